//! The Prometheus endpoint of the agent and the collector (`[metrics] listen`).
//!
//! Metrics are kept and encoded by `prometheus-client` (Prometheus text 0.0.4,
//! or OpenMetrics 1.0 when the scraper asks for it); this module only answers
//! `GET /metrics` over plain HTTP/1.1 on a listener of its own. It is read-only
//! and bounded: at most [`MAX_SCRAPERS`] connections at once (a new one takes
//! the place of the oldest that has not sent its request yet: idle
//! connections cannot keep a scraper out), a request head of at most
//! [`HEAD_MAX`] bytes that must arrive within [`HEAD_TIMEOUT`],
//! [`REQUEST_TIMEOUT`] for the whole exchange. Memory: about
//! `MAX_SCRAPERS × (HEAD_MAX + one encoded scrape)`. Bind it to loopback or a management network: it tells
//! anyone who can reach it the host names and addresses a process serves.

use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Connections served at once (see [`serve`] for who makes room).
pub const MAX_SCRAPERS: usize = 32;
/// Time allowed for the request head to arrive.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head read (request line and headers).
pub const HEAD_MAX: usize = 8 << 10;
/// Time allowed for a whole request, from accept to the last byte sent.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `[metrics]` of the agent's and the collector's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the HTTP endpoint (`GET /metrics`), e.g. `127.0.0.1:9464`.
    pub listen: crate::util::config::ListenAddr,
}

/// A registry whose metric names all start with `logseal_`, holding a
/// process's own metrics (`own`, read at each scrape), the expiry of the
/// certificate files it uses, the fsync histogram as `ROLE_fsync_seconds`
/// and, given with its help text, the ack histogram as `ROLE_ack_seconds`.
pub fn registry(
    own: Box<dyn prometheus_client::collector::Collector>,
    certificates: &[crate::monitor::expiry::Watched],
    (role, fsync_of): (&str, &str),
    ack: Option<(&str, Histogram)>,
) -> Registry {
    let mut r = Registry::with_prefix("logseal");
    r.register_collector(own);
    r.register_collector(Box::new(crate::monitor::expiry::ExpiryMetrics(
        certificates.to_vec(),
    )));
    r.register_with_unit(
        format!("{role}_fsync"),
        format!("Time each fsync of a {fsync_of} file took"),
        Unit::Seconds,
        crate::storage::writebehind::FSYNC_SECONDS.clone(),
    );
    if let Some((help, h)) = ack {
        r.register_with_unit(format!("{role}_ack"), help, Unit::Seconds, h);
    }
    r
}

/// Binds the endpoint's listener (before the process says it is ready, so
/// that a bad address stops the start) and prints `metrics http://ADDR/metrics`.
pub async fn bind(cfg: &MetricsConfig) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(cfg.listen.0)
        .await
        .map_err(crate::util::in_doing(format_args!(
            "[metrics] listen = \"{}\": binding",
            cfg.listen
        )))?;
    crate::announce(format_args!("metrics http://{}/metrics", l.local_addr()?));
    Ok(l)
}

/// Answers scrapes on `listener` until `stop` turns true (or its sender is gone).
///
/// When all [`MAX_SCRAPERS`] places are taken, a new connection takes the
/// place of the oldest one that has not sent its request head yet (a scraper
/// sends it at once; a client that connects and waits is what goes), and is
/// closed only if every place is answering a request.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    struct Place {
        heard: Arc<std::sync::atomic::AtomicBool>,
        task: tokio::task::AbortHandle,
    }
    let mut places: std::collections::VecDeque<Place> = std::collections::VecDeque::new();
    loop {
        tokio::select! {
            changed = stop.changed() => if changed.is_err() || *stop.borrow() {
                for p in places {
                    p.task.abort();
                }
                return;
            },
            accepted = listener.accept() => {
                let sock = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of descriptors: the connection waits in the backlog.
                        tracing::debug!(error = %e, "metrics: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                places.retain(|p| !p.task.is_finished());
                if places.len() >= MAX_SCRAPERS {
                    let idle = places
                        .iter()
                        .position(|p| !p.heard.load(std::sync::atomic::Ordering::Relaxed));
                    match idle.and_then(|i| places.remove(i)) {
                        Some(p) => p.task.abort(),
                        None => continue, // every place is answering: closed
                    }
                }
                let registry = registry.clone();
                let heard = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let h = heard.clone();
                let task = tokio::spawn(async move {
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(sock, &registry, &h)).await;
                });
                places.push_back(Place {
                    heard,
                    task: task.abort_handle(),
                });
            }
        }
    }
}

/// Reads one request and answers it; the connection is then closed.
async fn answer(
    mut sock: TcpStream,
    registry: &Registry,
    heard: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let head_by = tokio::time::Instant::now() + HEAD_TIMEOUT;
    let end = loop {
        let n = tokio::time::timeout_at(head_by, sock.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head_end(&head) {
            heard.store(true, std::sync::atomic::Ordering::Relaxed);
            break end;
        }
        if head.len() >= HEAD_MAX {
            return reply(
                &mut sock,
                "431 Request Header Fields Too Large",
                TEXT,
                "request head too large\n",
                true,
            )
            .await;
        }
    };
    let head = String::from_utf8_lossy(&head[..end]);
    let Request {
        method,
        path,
        openmetrics,
    } = Request::parse(&head);
    let body_wanted = method == "GET";
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let mut out = String::with_capacity(16 << 10);
            let (encoded, kind) = if openmetrics {
                (
                    prometheus_client::encoding::text::encode(&mut out, registry),
                    OPENMETRICS,
                )
            } else {
                (
                    prometheus_client::encoding::prometheus_text::encode(&mut out, registry),
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                )
            };
            match encoded {
                Ok(()) => reply(&mut sock, "200 OK", kind, &out, body_wanted).await,
                Err(_) => {
                    reply(
                        &mut sock,
                        "500 Internal Server Error",
                        TEXT,
                        "encoding failed\n",
                        body_wanted,
                    )
                    .await
                }
            }
        }
        ("GET" | "HEAD", "/") => {
            reply(
                &mut sock,
                "200 OK",
                TEXT,
                "logseal: metrics at /metrics\n",
                body_wanted,
            )
            .await
        }
        (_, "/metrics" | "/") => {
            reply(
                &mut sock,
                "405 Method Not Allowed",
                TEXT,
                "only GET and HEAD\n",
                true,
            )
            .await
        }
        _ => {
            reply(
                &mut sock,
                "404 Not Found",
                TEXT,
                "not found: metrics are at /metrics\n",
                body_wanted,
            )
            .await
        }
    }
}

/// Where a request head ends (before its blank line) in what was read, if
/// it has ended within [`HEAD_MAX`] bytes.
pub fn head_end(read: &[u8]) -> Option<usize> {
    read.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .filter(|e| *e + 4 <= HEAD_MAX)
}

/// What a request head asks for: the method and path of its request line
/// (the query cut off), and whether an `Accept` header names OpenMetrics.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// `GET`, `HEAD`, … as sent.
    pub method: &'a str,
    /// The target before any `?`.
    pub path: &'a str,
    /// The client accepts `application/openmetrics-text`.
    pub openmetrics: bool,
}

impl<'a> Request<'a> {
    /// Parses a request head (CRLF-separated lines, without the blank line).
    /// Anything parses: what is not a request line gives a method and path
    /// that match nothing served.
    pub fn parse(head: &'a str) -> Request<'a> {
        let mut lines = head.split("\r\n");
        let mut request = lines.next().unwrap_or_default().split(' ');
        let (method, target) = (
            request.next().unwrap_or_default(),
            request.next().unwrap_or_default(),
        );
        let path = target.split('?').next().unwrap_or_default();
        let openmetrics = lines
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("accept"))
            .any(|(_, v)| v.contains("application/openmetrics-text"));
        Request {
            method,
            path,
            openmetrics,
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn reply(
    sock: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &str,
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    if with_body {
        sock.write_all(body.as_bytes()).await?;
    }
    sock.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_gives_its_method_path_and_accept() {
        let r = Request::parse(
            "GET /metrics?name[]=x HTTP/1.1\r\nHost: h\r\nACCEPT : text/plain, application/openmetrics-text; version=1.0.0",
        );
        assert_eq!(
            r,
            Request {
                method: "GET",
                path: "/metrics",
                openmetrics: true
            }
        );
        // An Accept value elsewhere, or a header named like it, is not one.
        let r = Request::parse("HEAD / HTTP/1.0\r\nX-Accept: application/openmetrics-text");
        assert_eq!((r.method, r.path, r.openmetrics), ("HEAD", "/", false));
        // Not a request line: nothing served matches.
        for junk in ["", "GET", "\u{fffd}\u{fffd}", " /metrics"] {
            let r = Request::parse(junk);
            assert!(!(r.method == "GET" && r.path == "/metrics"), "{junk:?}");
        }
    }

    #[test]
    fn a_head_ends_at_its_blank_line_within_the_bound() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
        let mut long = vec![b'a'; HEAD_MAX - 4];
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head_end(&long), Some(HEAD_MAX - 4));
        long.insert(0, b'a');
        assert_eq!(head_end(&long), None, "one byte beyond the bound");
    }
}
