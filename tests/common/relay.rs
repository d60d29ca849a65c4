//! A TCP relay on 127.0.0.1:0 to an address given later, changed when the
//! process behind it restarts on another port, or cut: what a configuration
//! names before its peer is up. A real hop; TLS runs end to end through it.
#![allow(dead_code)]

use std::net::TcpStream;
use std::sync::{Arc, Mutex};

pub struct Relay {
    pub addr: String,
    target: Arc<Mutex<Option<String>>>,
    /// The connections relayed so far (both ends), to [`cut`](Relay::cut).
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    pub fn start() -> Relay {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let target = Arc::new(Mutex::new(None::<String>));
        let live = Arc::new(Mutex::new(Vec::new()));
        let (t, lv) = (target.clone(), live.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let to = t.lock().unwrap().clone();
                // Nothing to relay to: the connection is closed.
                let Some(Ok(up)) = to.map(TcpStream::connect) else {
                    continue;
                };
                lv.lock()
                    .unwrap()
                    .extend([c.try_clone().unwrap(), up.try_clone().unwrap()]);
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                pipe(c.try_clone().unwrap(), up.try_clone().unwrap());
                pipe(up, c);
            }
        });
        Relay { addr, target, live }
    }

    /// Relays new connections to `addr`.
    pub fn to(&self, addr: &str) {
        *self.target.lock().unwrap() = Some(addr.to_string());
    }

    /// Closes every relayed connection and refuses new ones (until
    /// [`to`](Relay::to)): the process behind it is unreachable, yet runs.
    pub fn cut(&self) {
        *self.target.lock().unwrap() = None;
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}
