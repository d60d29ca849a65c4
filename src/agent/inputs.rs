//! The agent's inputs: binding every configured socket (or taking the one
//! systemd passed, socket activation), the socket files it creates and
//! removes, and `--check-config`'s checks of the inputs and certificates.

use super::config::{AgentConfig, Input, WhenFull};
use super::error::{bind_error, AgentError};
use crate::chain::record::Source;
use crate::ingest::listen;
use crate::ingest::LossCounter;
use crate::util::stop::Reloadable;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

/// An input bound and configured, not serving yet.
pub(super) enum Bound {
    /// A UDP socket, its loss counter, and the kernel's drop count for it
    /// when it was bound (later drops are losses).
    Udp(tokio::net::UdpSocket, Arc<LossCounter>, u64),
    Tcp(tokio::net::TcpListener),
    Tls(
        tokio::net::TcpListener,
        Arc<Reloadable<rustls::ServerConfig>>,
    ),
    /// The socket, its name, its loss counter, and whether senders wait
    /// while the spool is full.
    UnixDgram(tokio::net::UnixDatagram, String, Arc<LossCounter>, bool),
    UnixStream(tokio::net::UnixListener, String),
}

/// Socket files the agent created, with their inode: removed when it exits,
/// whether it ran or failed to start — unless another process has bound the
/// path since.
pub(super) struct SocketFiles(Vec<(std::path::PathBuf, u64)>);

impl SocketFiles {
    pub(super) fn new() -> SocketFiles {
        SocketFiles(Vec::new())
    }

    fn add(&mut self, path: &std::path::Path) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::symlink_metadata(path) {
            self.0.push((path.to_path_buf(), m.ino()));
        }
    }
}

impl Drop for SocketFiles {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        for (p, ino) in &self.0 {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.ino() == *ino) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Binds every input and loads every certificate: all that can fail for a
/// reason outside the chain, done before the chain is touched.
pub(super) fn bind_inputs(
    cfg: &AgentConfig,
    rt: &tokio::runtime::Runtime,
    files: &mut SocketFiles,
) -> Result<Vec<Bound>, AgentError> {
    let mut inherited = Inherited::from_env();
    let mut bound = Vec::new();
    rt.block_on(async {
        for input in &cfg.inputs {
            bound.push(match input {
                Input::Udp { listen } => {
                    let sock = match inherited.udp(listen.0) {
                        Some(s) => tokio::net::UdpSocket::from_std(s)?,
                        None => tokio::net::UdpSocket::bind(listen.0)
                            .await
                            .map_err(bind_error(format_args!("udp://{listen}")))?,
                    };
                    let addr = sock.local_addr()?;
                    let loss = Arc::new(LossCounter::new(Source::SyslogUdp, addr.to_string()));
                    // Before the address is printed (senders may start at
                    // once): the large buffer, and where kernel drops start.
                    listen::enlarge_rcvbuf(&sock);
                    let drops = listen::udp_drops(&sock).unwrap_or(0);
                    Bound::Udp(sock, loss, drops)
                }
                Input::Tcp { listen } => Bound::Tcp(match inherited.tcp(listen.0) {
                    Some(l) => tokio::net::TcpListener::from_std(l)?,
                    None => tokio::net::TcpListener::bind(listen.0)
                        .await
                        .map_err(bind_error(format_args!("tcp://{listen}")))?,
                }),
                Input::Tls {
                    listen,
                    cert,
                    key,
                    client_ca,
                } => {
                    let tls = crate::transport::tls::syslog_server_config(
                        cert,
                        key,
                        client_ca.as_deref(),
                    )
                    .map_err(|cause| AgentError::Tls {
                        what: format!("input tls://{listen}"),
                        cause: Box::new(cause),
                    })?;
                    let l = match inherited.tcp(listen.0) {
                        Some(l) => tokio::net::TcpListener::from_std(l)?,
                        None => tokio::net::TcpListener::bind(listen.0)
                            .await
                            .map_err(bind_error(format_args!("tls://{listen}")))?,
                    };
                    Bound::Tls(l, Arc::new(Reloadable::new(tls)))
                }
                Input::UnixDgram { path, when_full } => {
                    let s = match inherited.unix_dgram(path) {
                        Some(s) => tokio::net::UnixDatagram::from_std(s)?,
                        None => {
                            bind_unix(path, false, files, |p| tokio::net::UnixDatagram::bind(p))?
                        }
                    };
                    let name = path.display().to_string();
                    let loss = Arc::new(LossCounter::new(Source::SyslogUnix, name.clone()));
                    Bound::UnixDgram(s, name, loss, *when_full == WhenFull::Block)
                }
                Input::UnixStream { path } => {
                    let l = match inherited.unix_stream(path) {
                        Some(l) => tokio::net::UnixListener::from_std(l)?,
                        None => {
                            bind_unix(path, true, files, |p| tokio::net::UnixListener::bind(p))?
                        }
                    };
                    Bound::UnixStream(l, path.display().to_string())
                }
            });
        }
        Ok::<(), AgentError>(())
    })?;
    inherited.warn_unused();
    // Connections beyond max_connections wait in the listen backlog: a long
    // one (the kernel caps it at net.core.somaxconn), so that a flood of
    // connections makes senders wait rather than time out (socket-activated
    // sockets too: listen(2) again only changes the backlog).
    for b in &bound {
        use std::os::fd::AsFd;
        let fd = match b {
            Bound::Tcp(l) | Bound::Tls(l, _) => l.as_fd(),
            Bound::UnixStream(l, _) => l.as_fd(),
            _ => continue,
        };
        let _ = rustix::net::listen(fd, LISTEN_BACKLOG);
    }
    Ok(bound)
}

/// Binds a unix socket at `path` (a stale socket file there is removed, a
/// live one refused), records the file to remove at exit, and lets every
/// local user send to it.
fn bind_unix<S>(
    path: &Path,
    stream: bool,
    files: &mut SocketFiles,
    bind: impl FnOnce(&Path) -> std::io::Result<S>,
) -> Result<S, AgentError> {
    remove_stale_socket(path, stream)?;
    let kind = if stream { "unix-stream" } else { "unix-dgram" };
    let s = bind(path).map_err(bind_error(format_args!("{kind}://{}", path.display())))?;
    files.add(path);
    set_mode(path, 0o666)?;
    Ok(s)
}

/// Listen backlog of the stream inputs the agent binds itself.
const LISTEN_BACKLOG: i32 = 4096;

/// `--check-config`: what a start would refuse, without binding anything or
/// touching the chain — every certificate, key and CA opened (by the service
/// user too, when run as root) and parsed, a key that does not match its
/// certificate, two inputs on one address, the journal. Every problem at once.
pub(crate) fn check_files(cfg: &AgentConfig) -> Vec<String> {
    use crate::storage::access::check_file;
    let user = crate::storage::access::service_user();
    let user = user.as_ref();
    let mut errors = Vec::new();
    let mut bound: Vec<(String, &'static str, Addr)> = Vec::new();
    for (i, input) in cfg.inputs.iter().enumerate() {
        let (space, addr, url) = match input {
            Input::Udp { listen } => ("udp", Addr::Net(listen.0), format!("udp://{listen}")),
            Input::Tcp { listen } => ("tcp", Addr::Net(listen.0), format!("tcp://{listen}")),
            Input::Tls { listen, .. } => ("tcp", Addr::Net(listen.0), format!("tls://{listen}")),
            Input::UnixDgram { path, .. } => (
                "unix",
                Addr::Unix(path),
                format!("unix-dgram://{}", path.display()),
            ),
            Input::UnixStream { path } => (
                "unix",
                Addr::Unix(path),
                format!("unix-stream://{}", path.display()),
            ),
        };
        let name = format!("input {} ({url})", i + 1);
        if let Some((other, _, _)) = bound
            .iter()
            .find(|(_, s, a)| *s == space && a.collides(&addr))
        {
            errors.push(format!("{name}: the same address as {other}"));
        }
        bound.push((name.clone(), space, addr));
        if let Input::Tls {
            cert,
            key,
            client_ca,
            ..
        } = input
        {
            let mut ok = check_file(&format!("{name} cert"), cert, user, &mut errors);
            ok &= check_file(&format!("{name} key"), key, user, &mut errors);
            if let Some(ca) = client_ca {
                ok &= check_file(&format!("{name} client_ca"), ca, user, &mut errors);
            }
            if ok {
                if let Err(e) =
                    crate::transport::tls::syslog_server_config(cert, key, client_ca.as_deref())
                {
                    errors.push(format!("{name}: {e}"));
                }
            }
        }
    }
    if let Some(ship) = &cfg.ship {
        let mut ok = check_file("ship.ca", &ship.ca, user, &mut errors);
        ok &= check_file("ship.cert", &ship.cert, user, &mut errors);
        ok &= check_file("ship.key", &ship.key, user, &mut errors);
        if ok {
            if let Err(e) = crate::transport::tls::client_config(&ship.ca, &ship.cert, &ship.key) {
                errors.push(format!("[ship]: {e}"));
            }
        }
    }
    if let Some(j) = &cfg.journald {
        if let Some(e) = super::journal::prepare(cfg, j).err() {
            errors.push(format!("[journald]: {e:#}"));
        }
    }
    errors
}

/// Where an input listens, for finding two inputs on one address.
enum Addr<'a> {
    Net(SocketAddr),
    Unix(&'a Path),
}

impl Addr<'_> {
    /// Whether two listen addresses of one kind collide: the same address,
    /// or the same port where one of them is a wildcard address that covers
    /// the other (`[::]` covers IPv4 too, as Linux binds it dual-stack by
    /// default). Port 0 is any free port: it collides with nothing.
    fn collides(&self, other: &Addr<'_>) -> bool {
        let covers = |w: IpAddr, o: IpAddr| match w {
            IpAddr::V4(v4) => v4.is_unspecified() && o.is_ipv4(),
            IpAddr::V6(v6) => v6.is_unspecified(),
        };
        match (self, other) {
            (Addr::Unix(a), Addr::Unix(b)) => a == b,
            (Addr::Net(x), Addr::Net(y)) => {
                let (xi, yi) = (x.ip().to_canonical(), y.ip().to_canonical());
                x.port() != 0
                    && x.port() == y.port()
                    && (xi == yi || covers(xi, yi) || covers(yi, xi))
            }
            _ => false,
        }
    }
}

/// Sockets passed by systemd (socket activation, `LISTEN_FDS`), matched to
/// inputs by kind and address, so that a socket unit can bind port 514 for an
/// agent that runs without privileges.
struct Inherited {
    tcp: Vec<std::net::TcpListener>,
    udp: Vec<std::net::UdpSocket>,
    unix_stream: Vec<std::os::unix::net::UnixListener>,
    unix_dgram: Vec<std::os::unix::net::UnixDatagram>,
}

impl Inherited {
    fn from_env() -> Inherited {
        let mut fds = listenfd::ListenFd::from_env();
        let mut me = Inherited {
            tcp: vec![],
            udp: vec![],
            unix_stream: vec![],
            unix_dgram: vec![],
        };
        for i in 0..fds.len() {
            if let Ok(Some(l)) = fds.take_tcp_listener(i) {
                me.tcp.push(l);
            } else if let Ok(Some(s)) = fds.take_udp_socket(i) {
                me.udp.push(s);
            } else if let Ok(Some(l)) = fds.take_unix_listener(i) {
                me.unix_stream.push(l);
            } else if let Ok(Some(s)) = fds.take_unix_datagram(i) {
                me.unix_dgram.push(s);
            } else {
                tracing::warn!(
                    index = i,
                    "passed file descriptor is not a socket logseal can use"
                );
            }
        }
        let n = me.tcp.len() + me.udp.len() + me.unix_stream.len() + me.unix_dgram.len();
        if n > 0 {
            tracing::info!(sockets = n, "using sockets passed by systemd");
        }
        me
    }

    fn same(listen: SocketAddr, got: std::io::Result<SocketAddr>) -> bool {
        got.is_ok_and(|a| a == listen)
    }

    /// Removes the first socket that `matches` and makes it non-blocking.
    fn take<T>(
        v: &mut Vec<T>,
        matches: impl Fn(&T) -> bool,
        nonblocking: impl Fn(&T) -> std::io::Result<()>,
    ) -> Option<T> {
        let s = v.swap_remove(v.iter().position(matches)?);
        nonblocking(&s).ok()?;
        Some(s)
    }

    fn same_path(
        addr: std::io::Result<std::os::unix::net::SocketAddr>,
        path: &std::path::Path,
    ) -> bool {
        addr.ok().and_then(|a| a.as_pathname().map(|p| p == path)) == Some(true)
    }

    fn tcp(&mut self, listen: SocketAddr) -> Option<std::net::TcpListener> {
        Self::take(
            &mut self.tcp,
            |l| Self::same(listen, l.local_addr()),
            |l| l.set_nonblocking(true),
        )
    }

    fn udp(&mut self, listen: SocketAddr) -> Option<std::net::UdpSocket> {
        Self::take(
            &mut self.udp,
            |s| Self::same(listen, s.local_addr()),
            |s| s.set_nonblocking(true),
        )
    }

    fn unix_stream(&mut self, path: &std::path::Path) -> Option<std::os::unix::net::UnixListener> {
        Self::take(
            &mut self.unix_stream,
            |l| Self::same_path(l.local_addr(), path),
            |l| l.set_nonblocking(true),
        )
    }

    fn unix_dgram(&mut self, path: &std::path::Path) -> Option<std::os::unix::net::UnixDatagram> {
        Self::take(
            &mut self.unix_dgram,
            |s| Self::same_path(s.local_addr(), path),
            |s| s.set_nonblocking(true),
        )
    }

    fn warn_unused(&self) {
        for l in &self.tcp {
            tracing::warn!(addr = ?l.local_addr().ok(), "passed TCP socket matches no input; not used");
        }
        for s in &self.udp {
            tracing::warn!(addr = ?s.local_addr().ok(), "passed UDP socket matches no input; not used");
        }
        for l in &self.unix_stream {
            tracing::warn!(addr = ?l.local_addr().ok(), "passed unix stream socket matches no input; not used");
        }
        for s in &self.unix_dgram {
            tracing::warn!(addr = ?s.local_addr().ok(), "passed unix datagram socket matches no input; not used");
        }
    }
}

/// Removes a socket file no process serves any more (one left by a process
/// that died). A socket another process serves is refused, not taken over.
fn remove_stale_socket(path: &std::path::Path, stream: bool) -> Result<(), AgentError> {
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A non-blocking connect: a live server with a full backlog
            // answers EAGAIN at once instead of making us wait.
            let ty = if stream {
                SocketType::STREAM
            } else {
                SocketType::DGRAM
            };
            let probe = rustix::net::socket_with(
                AddressFamily::UNIX,
                ty,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            )
            .and_then(|fd| rustix::net::connect(&fd, &SocketAddrUnix::new(path)?));
            match probe {
                Ok(()) | Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => {
                    Err(AgentError::Refused(format!(
                        "{} is served by another process (another agent, or a syslog daemon): \
                         refusing to take it over",
                        path.display()
                    )))
                }
                Err(Errno::CONNREFUSED) => Ok(std::fs::remove_file(path)?),
                Err(e) => Err(AgentError::Refused(format!("{}: {e}", path.display()))),
            }
        }
        Ok(_) => Err(AgentError::Refused(format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ))),
        Err(_) => Ok(()),
    }
}

fn set_mode(path: &std::path::Path, mode: u32) -> Result<(), AgentError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Addr;
    use std::path::Path;

    fn same_address(space: &str, a: &str, b: &str) -> bool {
        let addr = |s: &'static str| match space {
            "unix" => Addr::Unix(Path::new(s)),
            _ => Addr::Net(s.parse().unwrap()),
        };
        // Both ways round: a collision is symmetric.
        let (a, b) = (a.to_string().leak(), b.to_string().leak());
        let one = addr(a).collides(&addr(b));
        assert_eq!(one, addr(b).collides(&addr(a)), "{a} {b}");
        one
    }

    #[test]
    fn listen_addresses_collide_as_the_kernel_would() {
        assert!(same_address("tcp", "127.0.0.1:514", "127.0.0.1:514"));
        assert!(same_address("tcp", "0.0.0.0:514", "127.0.0.1:514"));
        assert!(
            same_address("tcp", "[::]:514", "0.0.0.0:514"),
            "dual-stack wildcard"
        );
        assert!(same_address("tcp", "[::]:514", "127.0.0.1:514"));
        assert!(same_address(
            "tcp",
            "[::ffff:127.0.0.1]:514",
            "127.0.0.1:514"
        ));
        assert!(!same_address("tcp", "0.0.0.0:514", "[::1]:514"));
        assert!(!same_address("tcp", "127.0.0.1:514", "127.0.0.2:514"));
        assert!(
            !same_address("tcp", "127.0.0.1:0", "127.0.0.1:0"),
            "port 0: any port"
        );
        assert!(same_address("unix", "/run/a.sock", "/run/a.sock"));
    }
}
