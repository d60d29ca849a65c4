//! A session's wake-up: an eventfd the session polls together with its
//! socket. The write-behind pool signals it after an fdatasync of a chain the
//! session waits on, the leaf stage after it hashed a batch, the collector at
//! its stop or when a CRL revokes the session's certificate. A session with
//! nothing to do sleeps in poll(2) until one of these or its socket: no timer
//! per idle connection, no polling while acknowledgements are pending.

use rustix::event::{eventfd, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

/// The eventfd of one session.
pub struct Wake(OwnedFd);

/// What [`Wake::wait`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Woken {
    /// The socket has bytes (or its end).
    Input,
    /// The wake-up was signalled (and is reset).
    Signal,
    /// Neither within the wait.
    Timeout,
}

impl Wake {
    /// A new wake-up (one file descriptor).
    pub fn new() -> std::io::Result<Arc<Wake>> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Arc::new(Wake(fd)))
    }

    /// Signals it; never blocks (a counter at its maximum stays signalled).
    pub fn signal(&self) {
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }

    /// A waker for the write-behind pool that signals this.
    pub fn waker(self: &Arc<Self>) -> crate::storage::writebehind::Waker {
        let me = self.clone();
        Arc::new(move || me.signal())
    }

    /// Resets the signal.
    fn reset(&self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&self.0, &mut b);
    }

    /// Waits until `sock` is readable or this is signalled, `wait` at most
    /// (`None`: no limit). The socket counts first, and then a signal stays
    /// set for the next wait: what it announced is seen to after the input.
    pub fn wait(&self, sock: &impl rustix::fd::AsFd, wait: Option<Duration>) -> Woken {
        let timeout = wait.map(|d| Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        let mut fds = [
            PollFd::new(sock, PollFlags::IN),
            PollFd::new(&self.0, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            // EINTR: the caller looks again.
            Err(_) => Woken::Signal,
            Ok(0) => Woken::Timeout,
            Ok(_) if !fds[0].revents().is_empty() => Woken::Input,
            Ok(_) => {
                self.reset();
                Woken::Signal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_before_the_wait_is_not_lost_and_is_reset_by_it() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let w = Wake::new().unwrap();
        let waker = w.waker();
        waker();
        waker();
        assert_eq!(w.wait(&a, Some(Duration::from_secs(5))), Woken::Signal);
        assert_eq!(w.wait(&a, Some(Duration::from_millis(1))), Woken::Timeout);
    }

    #[test]
    fn input_counts_first_and_the_signal_stays_for_the_next_wait() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut b, b"x").unwrap();
        let w = Wake::new().unwrap();
        w.signal();
        assert_eq!(w.wait(&a, None), Woken::Input);
        let mut buf = [0u8; 1];
        std::io::Read::read_exact(&mut &a, &mut buf).unwrap();
        assert_eq!(w.wait(&a, None), Woken::Signal);
        assert_eq!(w.wait(&a, Some(Duration::from_millis(1))), Woken::Timeout);
    }
}
