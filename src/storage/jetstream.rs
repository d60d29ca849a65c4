//! Chains on NATS JetStream: the collector's store backend for a cluster of
//! collectors (`[jetstream]` in the collector's configuration), and the
//! reader behind `nats://` store URLs.
//!
//! ```text
//! stream  LOGSEAL (configurable), subjects logseal.chain.>, file storage,
//!         replicas 3, discard new, deny_delete, deny_purge
//! subject logseal.chain.<host>.<chain id>        one per chain
//! message the next records of the chain, as segment frames (FORMAT.md §2),
//!         headers Nats-Msg-Id, Logseal-Seq (first-last), Logseal-Tip (JSON)
//! ```
//!
//! Invariants:
//! - A message holds only records that continue the chain's tip as the
//!   publishing collector read it from the stream, and it is published with
//!   `Nats-Expected-Last-Subject-Sequence` set to the stream sequence of the
//!   chain's last message that tip came from: if another collector appended
//!   meanwhile, JetStream refuses it whole (nothing of it is stored), and the
//!   collector reads the other's messages back through the tip check before
//!   it tries again. Two collectors can never interleave or fork a chain.
//! - `Nats-Msg-Id` names the chain and the seq the message starts at, which
//!   is the chain's next seq when it was checked: its position. A second
//!   message for a position (a publish repeated after a lost ack, or another
//!   collector's, whatever its content) is answered as a duplicate and not
//!   stored, and the collector reads the chain back and checks its batch
//!   again. This holds where nats-server lets two conditional publishes
//!   through at once (seen with 2.9.10 in tests/jetstream.rs); a read-back
//!   after the ack is the last guard (see [`JetStream::publish`]).
//! - A publish is complete only when JetStream acknowledged it, which it does
//!   after the replicas stored it: only then is an agent acknowledged.
//! - The stream refuses message deletes and purges for good (`deny_delete`,
//!   `deny_purge` cannot be unset); a collector refuses to use a stream that
//!   lacks them, or that may discard old messages.
//! - `Logseal-Tip` is the chain's tip after the message's last record, as the
//!   collector that verified it computed: another collector resumes a chain
//!   from its last message without reading it all. `logseal verify` never
//!   reads it; it checks every record from the Genesis (export first).

use crate::chain::frame::{encode_frame, parse_frame, FRAME_RECORD};
use crate::chain::tip::Tip;
use crate::chain::ChainId;
use async_nats::jetstream::{self, stream};
use std::path::PathBuf;
use std::time::Duration;

/// Subject prefix of every chain.
pub const SUBJECT_PREFIX: &str = "logseal.chain";
/// Default stream name.
pub const DEFAULT_STREAM: &str = "LOGSEAL";
/// Room left in a message for its headers (the tip's JSON, the ids).
const HEADER_ROOM: usize = 8 << 10;
/// Largest `Logseal-Tip` header read back.
const MAX_TIP_HEADER: usize = 4 << 10;
/// How long a message is remembered for de-duplication.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Where the stream is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamConfig {
    /// Servers of the cluster (`nats://host:port` or `host:port`), at least one.
    pub servers: Vec<String>,
    /// Stream name.
    #[serde(default = "d_stream")]
    pub stream: String,
    /// Replicas of the stream when the collector creates it (1 to 5).
    #[serde(default = "d_replicas")]
    pub replicas: usize,
    /// CA certificate (PEM) of the servers: TLS is required when set.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// User name.
    #[serde(default)]
    pub user: Option<String>,
    /// File holding the user's password (one line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Talk to the servers without TLS (a password and every record in the
    /// clear, acks that anyone on the path could forge): off unless set.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Deadline of every request and publish.
    #[serde(
        default = "d_timeout",
        deserialize_with = "crate::util::units::serde_units::duration"
    )]
    pub timeout: Duration,
}

fn d_stream() -> String {
    DEFAULT_STREAM.into()
}
fn d_replicas() -> usize {
    3
}
fn d_timeout() -> Duration {
    Duration::from_secs(10)
}

/// What is wrong with a JetStream setting or a `nats://` URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JetStreamConfigError {
    /// A value out of its range or form.
    #[error("{key}: {problem}")]
    Value {
        /// The setting.
        key: &'static str,
        /// What was expected.
        problem: String,
    },
    /// A `nats://` URL that does not parse.
    #[error("store URL {url:?}: {problem} (expected nats://[USER@]HOST:PORT[,HOST:PORT…][/STREAM][?ca=F&cert=F&key=F&password_file=F][&plaintext=yes])")]
    Url {
        /// The URL as given.
        url: String,
        /// What was wrong.
        problem: String,
    },
}

/// `url` with the password of its user part (if it has one) replaced by
/// `***`, for messages.
fn without_password(url: &str) -> String {
    let Some(rest) = url.strip_prefix("nats://") else {
        return url.into();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("nats://{user}:***@{}", &rest[userinfo.len() + 1..])
        }
        _ => url.into(),
    }
}

impl JetStreamConfig {
    /// Checks values that parse but cannot work.
    pub fn check(&self) -> Result<(), JetStreamConfigError> {
        let bad = |key, problem: &str| {
            Err(JetStreamConfigError::Value {
                key,
                problem: problem.into(),
            })
        };
        if self.servers.is_empty() || self.servers.len() > 16 {
            return bad("jetstream.servers", "1 to 16 addresses");
        }
        for s in &self.servers {
            let hostport = s
                .strip_prefix("nats://")
                .or_else(|| s.strip_prefix("tls://"))
                .unwrap_or(s);
            if hostport.is_empty() || hostport.contains(['/', ',', ' ']) || !hostport.contains(':')
            {
                return bad(
                    "jetstream.servers",
                    &format!("{s:?} is not nats://HOST:PORT (one address per list item)"),
                );
            }
        }
        let name_ok = !self.stream.is_empty()
            && self.stream.len() <= 64
            && self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return bad(
                "jetstream.stream",
                "1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
            );
        }
        if !(1..=5).contains(&self.replicas) {
            return bad("jetstream.replicas", "1 to 5");
        }
        if self.cert.is_some() != self.key.is_some() {
            return bad("jetstream.cert", "cert and key go together");
        }
        if self.cert.is_some() && self.ca.is_none() {
            return bad("jetstream.ca", "a client certificate needs the servers' CA");
        }
        if self.password_file.is_some() && self.user.is_none() {
            return bad("jetstream.password_file", "a password needs a user");
        }
        if self.ca.is_none() && !self.allow_plaintext {
            return bad(
                "jetstream.ca",
                "TLS is required (the servers' CA); set allow_plaintext = true only on a trusted loopback",
            );
        }
        if self.timeout < Duration::from_secs(1) || self.timeout > Duration::from_secs(120) {
            return bad("jetstream.timeout", "1 s to 120 s");
        }
        Ok(())
    }

    /// Reads `nats://[USER@]HOST:PORT[,HOST:PORT…][/STREAM][?ca=F&cert=F&key=F&password_file=F]`.
    pub fn from_url(url: &str) -> Result<JetStreamConfig, JetStreamConfigError> {
        let fail = |problem: &str| JetStreamConfigError::Url {
            url: without_password(url),
            problem: problem.into(),
        };
        let rest = url
            .strip_prefix("nats://")
            .ok_or_else(|| fail("not a nats:// URL"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, stream) = rest.split_once('/').unwrap_or((rest, DEFAULT_STREAM));
        let (user, hosts) = match authority.rsplit_once('@') {
            Some((u, _)) if u.contains(':') => {
                return Err(fail(&format!(
                "a password in the URL ({:?}) would show in the process list: use password_file=",
                u.split(':').next().unwrap_or_default()
            )))
            }
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        let mut cfg = JetStreamConfig {
            servers: hosts.split(',').map(|h| format!("nats://{h}")).collect(),
            stream: stream.to_string(),
            replicas: d_replicas(),
            ca: None,
            cert: None,
            key: None,
            user,
            password_file: None,
            allow_plaintext: false,
            timeout: d_timeout(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| fail(&format!("{pair:?} is not KEY=VALUE")))?;
            let v = Some(PathBuf::from(v));
            match k {
                "ca" => cfg.ca = v,
                "cert" => cfg.cert = v,
                "key" => cfg.key = v,
                "password_file" => cfg.password_file = v,
                "plaintext" if v.as_deref() == Some(std::path::Path::new("yes")) => {
                    cfg.allow_plaintext = true
                }
                _ => return Err(fail(&format!("unknown parameter {k:?}"))),
            }
        }
        cfg.check().map_err(|e| fail(&e.to_string()))?;
        Ok(cfg)
    }
}

/// A JetStream request that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JetStreamError {
    /// The servers could not be reached or refused the client.
    #[error("connecting to NATS at {servers}: {cause}")]
    Connect {
        /// The servers tried.
        servers: String,
        /// Why.
        cause: String,
    },
    /// A file the connection needs.
    #[error("{what} {path}: {cause}")]
    File {
        /// Which setting.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The stream exists but does not keep evidence (or another is configured).
    #[error("stream {stream}: {problem}; the collector does not write evidence to a stream that may lose it")]
    NotWriteOnce {
        /// The stream.
        stream: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A request to the stream failed.
    #[error("stream {stream}: {what}: {cause}")]
    Request {
        /// The stream.
        stream: String,
        /// What was asked.
        what: String,
        /// Why it failed.
        cause: String,
    },
    /// A message of a chain that is not what a collector writes.
    #[error("stream {stream} message {seq} ({subject}): {problem}")]
    Message {
        /// The stream.
        stream: String,
        /// Its stream sequence.
        seq: u64,
        /// Its subject.
        subject: String,
        /// What is wrong.
        problem: String,
    },
    /// A record too large for one message of this server.
    #[error(
        "a record of {bytes} bytes does not fit a message of this NATS server (max_payload {max})"
    )]
    TooLarge {
        /// The record's size.
        bytes: usize,
        /// The server's limit.
        max: usize,
    },
}

/// One message of a chain, read back.
pub struct ChainMessage {
    /// Its stream sequence.
    pub stream_seq: u64,
    /// The records it holds, in order.
    pub records: Vec<Vec<u8>>,
    /// The chain's tip after them, as the collector that wrote it computed
    /// (absent or unreadable: `None`).
    pub tip: Option<Tip>,
}

/// How a publish ended.
pub enum Published {
    /// Stored at this stream sequence (replicated).
    Stored(u64),
    /// The chain moved (another collector appended, or this message was
    /// stored before): read it back and try again.
    Moved,
}

/// The chains a stream holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// By host and chain, sorted.
    pub chains: Vec<(String, ChainId)>,
    /// Subjects under the prefix that name no chain: how many.
    pub others: u64,
    /// The first of them.
    pub other_subjects: Vec<String>,
}

/// A connection to the stream, usable from blocking threads.
pub struct JetStream {
    /// Why the stream is not write-once (`None`: it is).
    loose: Option<String>,
    rt: tokio::runtime::Runtime,
    ctx: jetstream::Context,
    stream: stream::Stream,
    name: String,
    /// Largest payload of a message (the server's `max_payload`, less room
    /// for headers).
    chunk: usize,
}

/// The subject of a chain.
pub fn subject(host: &str, chain: ChainId) -> String {
    format!("{SUBJECT_PREFIX}.{host}.{chain}")
}

/// The host and chain a subject names (`None`: not a chain's subject).
pub fn parse_subject(subject: &str) -> Option<(String, ChainId)> {
    let rest = subject.strip_prefix(SUBJECT_PREFIX)?.strip_prefix('.')?;
    let (host, chain) = rest.rsplit_once('.')?;
    crate::chain::hostname::check(host).ok()?;
    let id = crate::chain::hex::decode(chain).and_then(|b| <[u8; 16]>::try_from(b).ok())?;
    // One spelling per chain: the one `subject` writes (lower-case hex).
    (self::subject(host, ChainId(id)) == subject).then(|| (host.to_string(), ChainId(id)))
}

/// A message's payload that is not whole record frames.
#[derive(Debug, thiserror::Error)]
#[error("payload frame {frame}: {problem}")]
pub struct PayloadError {
    /// Which frame (0-based).
    pub frame: usize,
    /// What is wrong with it.
    pub problem: String,
}

/// The records of a message's payload (segment frames, each whole).
pub fn decode_payload(mut p: &[u8]) -> Result<Vec<Vec<u8>>, PayloadError> {
    let mut out = Vec::new();
    while !p.is_empty() {
        let bad = |problem: String| PayloadError {
            frame: out.len(),
            problem,
        };
        let f = parse_frame(p).map_err(|e| bad(e.to_string()))?;
        if f.frame_type != FRAME_RECORD {
            return Err(bad("not a record".into()));
        }
        out.push(f.payload.to_vec());
        p = &p[f.len..];
    }
    if out.is_empty() {
        return Err(PayloadError {
            frame: 0,
            problem: "no record".into(),
        });
    }
    Ok(out)
}

impl JetStream {
    /// Connects and opens the stream; creates it if `create` and it does not
    /// exist. A stream that is not write-once is refused.
    pub fn open(cfg: &JetStreamConfig, create: bool) -> Result<JetStream, JetStreamError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("logseal-nats")
            .enable_all()
            .build()
            .map_err(|e| JetStreamError::Connect {
                servers: cfg.servers.join(","),
                cause: format!("starting its runtime: {e}"),
            })?;
        // The whole opening under one deadline: a server that accepts the
        // connection and never answers must not hang a collector or verify.
        let deadline = cfg.timeout.saturating_mul(2);
        let opened =
            rt.block_on(async { tokio::time::timeout(deadline, open_async(cfg, create)).await });
        let (ctx, stream, chunk) = opened.map_err(|_| JetStreamError::Connect {
            servers: cfg.servers.join(","),
            cause: format!(
                "no answer within {deadline:?} (a server that accepts and stays silent?)"
            ),
        })??;
        let loose = write_once(cfg, chunk, &stream.cached_info().config);
        if let (true, Some(problem)) = (create, &loose) {
            return Err(JetStreamError::NotWriteOnce {
                stream: cfg.stream.clone(),
                problem: problem.clone(),
            });
        }
        Ok(JetStream {
            loose,
            rt,
            ctx,
            stream,
            name: cfg.stream.clone(),
            chunk,
        })
    }

    /// Runs a request to completion on the client's runtime. From a thread
    /// that is itself inside a runtime (the collector's status task), on a
    /// short-lived thread of its own: a runtime cannot block inside another.
    fn block<T: Send>(&self, f: impl std::future::Future<Output = T> + Send) -> T {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.rt.block_on(f);
        }
        std::thread::scope(|s| {
            let t = s.spawn(|| self.rt.block_on(f));
            match t.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }

    /// Largest payload of one message.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn request_error(
        &self,
        what: impl Into<String>,
        cause: impl std::fmt::Display,
    ) -> JetStreamError {
        JetStreamError::Request {
            stream: self.name.clone(),
            what: what.into(),
            cause: cause.to_string(),
        }
    }

    /// The chain's message after stream sequence `after` (`None`: none).
    pub fn next(
        &self,
        host: &str,
        chain: ChainId,
        after: u64,
    ) -> Result<Option<ChainMessage>, JetStreamError> {
        let subject = subject(host, chain);
        let got = self.block(
            self.stream
                .raw_message_builder()
                .sequence(after.saturating_add(1))
                .next_by_subject(subject.clone())
                .send(),
        );
        let m = self.read(got, &subject, "reading the chain's next message")?;
        match m {
            Some(m) if m.stream_seq <= after => Err(JetStreamError::Message {
                stream: self.name.clone(),
                seq: m.stream_seq,
                subject,
                problem: format!(
                    "asked for a message after {after}, the server gave an earlier one"
                ),
            }),
            m => Ok(m),
        }
    }

    /// The chain's last message (`None`: the stream holds nothing of it).
    pub fn last(&self, host: &str, chain: ChainId) -> Result<Option<ChainMessage>, JetStreamError> {
        let subject = subject(host, chain);
        let got = self.block(self.stream.get_last_raw_message_by_subject(&subject));
        self.read(got, &subject, "reading the chain's last message")
    }

    fn read(
        &self,
        got: Result<jetstream::message::StreamMessage, stream::RawMessageError>,
        subject: &str,
        what: &str,
    ) -> Result<Option<ChainMessage>, JetStreamError> {
        let m = match got {
            Ok(m) => m,
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => return Err(self.request_error(format!("{what} ({subject})"), e)),
        };
        if m.subject.as_str() != subject {
            return Ok(None);
        }
        let bad = |problem: String| JetStreamError::Message {
            stream: self.name.clone(),
            seq: m.sequence,
            subject: subject.to_string(),
            problem,
        };
        let records = decode_payload(&m.payload).map_err(|e| bad(e.to_string()))?;
        let tip = m
            .headers
            .get("Logseal-Tip")
            .map(|v| v.as_str())
            .filter(|s| s.len() <= MAX_TIP_HEADER)
            .and_then(|s| serde_json::from_str::<Tip>(s).ok());
        Ok(Some(ChainMessage {
            stream_seq: m.sequence,
            records,
            tip,
        }))
    }

    /// Appends `records` (seqs `first..`) to the chain if its last message is
    /// still `expected_last` (0: the chain has none); `tip` is the tip after
    /// them. The records must fit one message ([`chunk`](Self::chunk)).
    pub fn publish(
        &self,
        host: &str,
        chain: ChainId,
        first: u64,
        records: &[&[u8]],
        tip: &Tip,
        expected_last: u64,
    ) -> Result<Published, JetStreamError> {
        let mut payload = Vec::new();
        for r in records {
            encode_frame(FRAME_RECORD, r, &mut payload);
        }
        if payload.len() > self.chunk {
            return Err(JetStreamError::TooLarge {
                bytes: payload.len(),
                max: self.chunk,
            });
        }
        let last = first + records.len() as u64 - 1;
        let mut h = async_nats::HeaderMap::new();
        // The position, not the content: one message per position.
        h.insert("Nats-Msg-Id", format!("{chain}:{first}"));
        h.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected_last.to_string(),
        );
        h.insert("Logseal-Seq", format!("{first}-{last}"));
        h.insert(
            "Logseal-Tip",
            serde_json::to_string(tip).unwrap_or_default(),
        );
        let subject = subject(host, chain);
        let ack = self.block(async {
            let fut = self
                .ctx
                .publish_with_headers(subject.clone(), h, payload.into())
                .await?;
            fut.await
        });
        match ack {
            Ok(a) if a.duplicate => Ok(Published::Moved),
            Ok(a) => {
                // Read back: the chain's first message after `expected_last`
                // must be this one. A server that let two conditional
                // publishes through (a leader change, an old server) would
                // otherwise fork the chain unseen; the caller then reads the
                // chain again and finds it damaged, and nothing is
                // acknowledged.
                let first_after = self.next(host, chain, expected_last)?;
                if first_after.as_ref().map(|m| m.stream_seq) == Some(a.sequence) {
                    return Ok(Published::Stored(a.sequence));
                }
                tracing::error!(
                    subject,
                    stored = a.sequence,
                    after = expected_last,
                    "the stream stored this message but not right after the chain's last one: another message came in between despite the expected sequence"
                );
                Ok(Published::Moved)
            }
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(Published::Moved)
            }
            Err(e) => Err(self.request_error(format!("publishing to {subject}"), e)),
        }
    }

    /// Every chain the stream holds, by host and chain, and the subjects
    /// under [`SUBJECT_PREFIX`] that are not a chain's (at most 100 named).
    pub fn chains(&self) -> Result<Listing, JetStreamError> {
        use futures_util::StreamExt;
        let filter = format!("{SUBJECT_PREFIX}.>");
        let got: Result<Listing, JetStreamError> = self.block(async {
            let mut subjects = self
                .stream
                .info_with_subjects(&filter)
                .await
                .map_err(|e| self.request_error("listing its chains", e))?;
            let mut out = Listing::default();
            while let Some(s) = subjects.next().await {
                let (s, _) = s.map_err(|e| self.request_error("listing its chains", e))?;
                match parse_subject(&s) {
                    Some(hc) => out.chains.push(hc),
                    None => {
                        out.others += 1;
                        if out.other_subjects.len() < 100 {
                            out.other_subjects.push(s);
                        }
                    }
                }
            }
            Ok(out)
        });
        let mut out = got?;
        out.chains.sort();
        out.chains.dedup();
        Ok(out)
    }

    /// Why the stream is not write-once, if it is not (a collector refuses
    /// such a stream; a reader reports it).
    pub fn not_write_once(&self) -> Option<&str> {
        self.loose.as_deref()
    }
}

async fn open_async(
    cfg: &JetStreamConfig,
    create: bool,
) -> Result<(jetstream::Context, stream::Stream, usize), JetStreamError> {
    let servers = cfg.servers.join(",");
    let connect_err = |cause: String| JetStreamError::Connect {
        servers: servers.clone(),
        cause,
    };
    let mut opts = async_nats::ConnectOptions::new()
        .name("logseal")
        .connection_timeout(cfg.timeout)
        .request_timeout(Some(cfg.timeout));
    if let Some(ca) = &cfg.ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&cfg.cert, &cfg.key) {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    if let Some(user) = &cfg.user {
        let password = match &cfg.password_file {
            Some(p) => {
                let text = crate::storage::fsutil::read_bounded_text(p, 4096).map_err(|cause| {
                    JetStreamError::File {
                        what: "jetstream.password_file",
                        path: p.clone(),
                        cause,
                    }
                })?;
                text.lines().next().unwrap_or_default().to_string()
            }
            None => String::new(),
        };
        opts = opts.user_and_password(user.clone(), password);
    }
    let addrs: Vec<async_nats::ServerAddr> = cfg
        .servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| connect_err(format!("{e}")))?;
    let client = opts
        .connect(addrs)
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    let max_payload = client.server_info().max_payload;
    let chunk = max_payload.saturating_sub(HEADER_ROOM);
    if chunk < 64 << 10 {
        return Err(connect_err(format!(
            "the server's max_payload ({max_payload} bytes) is too small for batches; at least 72 KiB"
        )));
    }
    let ctx = jetstream::ContextBuilder::new()
        .timeout(cfg.timeout)
        .build(client);
    let stream = match ctx.get_stream(&cfg.stream).await {
        Ok(s) => s,
        Err(e)
            if create
                && matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            ctx.create_stream(stream_config(cfg, max_payload))
                .await
                .map_err(|e| JetStreamError::Request {
                    stream: cfg.stream.clone(),
                    what: "creating it".into(),
                    cause: e.to_string(),
                })?;
            tracing::info!(
                stream = cfg.stream,
                replicas = cfg.replicas,
                "JetStream stream created (write-once)"
            );
            ctx.get_stream(&cfg.stream)
                .await
                .map_err(|e| JetStreamError::Request {
                    stream: cfg.stream.clone(),
                    what: "opening it after creating it".into(),
                    cause: e.to_string(),
                })?
        }
        Err(e) => {
            return Err(JetStreamError::Request {
                stream: cfg.stream.clone(),
                what: "opening it".into(),
                cause: e.to_string(),
            })
        }
    };
    Ok((ctx, stream, chunk))
}

/// The stream a collector creates: file storage, replicated, never losing a
/// message (no limit that discards, no delete, no purge, no rollup).
fn stream_config(cfg: &JetStreamConfig, max_payload: usize) -> stream::Config {
    stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        max_message_size: i32::try_from(max_payload).unwrap_or(i32::MAX),
        duplicate_window: DUPLICATE_WINDOW,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        max_bytes: -1,
        max_messages: -1,
        max_messages_per_subject: -1,
        ..Default::default()
    }
}

/// Why a stream could lose evidence, or take in records from elsewhere, or
/// refuse the collector's messages (`None`: it is write-once).
fn write_once(cfg: &JetStreamConfig, chunk: usize, c: &stream::Config) -> Option<String> {
    let subjects = format!("{SUBJECT_PREFIX}.>");
    let too_small = c.max_message_size > 0
        && usize::try_from(c.max_message_size).unwrap_or(0) < chunk + HEADER_ROOM;
    let problem = if !c.deny_delete || !c.deny_purge {
        "it allows deleting or purging messages (deny_delete and deny_purge must be set)"
    } else if c.allow_rollup {
        "it allows roll-ups (which purge a subject)"
    } else if c.discard != stream::DiscardPolicy::New {
        "its discard policy is old (it would drop the oldest evidence when full)"
    } else if c.retention != stream::RetentionPolicy::Limits {
        "its retention is not limits (interest or work-queue streams remove messages)"
    } else if c.max_age != Duration::ZERO || c.max_messages_per_subject > 0 {
        "it has a max_age or a per-subject limit (messages would expire)"
    } else if c.mirror.is_some() || c.sealed {
        "it is a mirror or sealed"
    } else if !c.subjects.contains(&subjects) {
        "its subjects do not include logseal.chain.>"
    } else if c.storage != stream::StorageType::File {
        "its storage is memory (a restart of its servers loses it)"
    } else if c.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        "it takes messages from other streams (sources)"
    } else if c.num_replicas < cfg.replicas {
        return Some(format!(
            "it has {} replica(s), fewer than the {} configured (jetstream.replicas)",
            c.num_replicas, cfg.replicas
        ));
    } else if too_small {
        return Some(format!(
            "its max_msg_size ({}) is below the server's max_payload: batches would be refused",
            c.max_message_size
        ));
    } else {
        return None;
    };
    Some(problem.into())
}

/// What [`export`] wrote: per chain, its directory and how much.
#[derive(Debug, serde::Serialize)]
pub struct Exported {
    /// The stream read.
    pub stream: String,
    /// The chains, in order of host and chain.
    pub chains: Vec<ExportedChain>,
    /// What makes the stream itself doubtful as evidence: it is not
    /// write-once, or holds subjects that are not a chain's.
    pub stream_problems: Vec<String>,
}

impl Exported {
    /// Every problem: the stream's, then each chain's export that stopped.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.stream_problems.clone();
        for c in &self.chains {
            if let Some(p) = &c.problem {
                out.push(format!("host {} chain {}: {p}", c.host, c.chain));
            }
        }
        out
    }
}

/// One chain written by [`export`].
#[derive(Debug, serde::Serialize)]
pub struct ExportedChain {
    /// Its host.
    pub host: String,
    /// Its id.
    pub chain: String,
    /// Messages read.
    pub messages: u64,
    /// Records written.
    pub records: u64,
    /// Stream sequence of its last message read.
    pub last_stream_seq: u64,
    /// Why the export of this chain stopped early, if it did (the records
    /// before are written; `verify` judges them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Errors of [`export`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the stream.
    #[error(transparent)]
    Stream(#[from] JetStreamError),
    /// Writing the files.
    #[error("{path}: {cause}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        cause: String,
    },
}

/// Name of the manifest [`export`] writes beside the chains.
pub const EXPORT_MANIFEST: &str = "export.json";

/// Writes every chain of the stream as segment files, one directory per
/// chain (`DIR/<layout>/<host>/<chain>/`: `chains`, or `hosts` as in a
/// store), and `DIR/export.json`; `dir` must not exist or be empty. Records are written as the stream holds them, so
/// that `logseal verify DIR` judges exactly what the stream holds.
pub fn export(
    jet: &JetStream,
    dir: &std::path::Path,
    layout: &str,
) -> Result<Exported, ExportError> {
    use crate::storage::segment_log::{LogOptions, SegmentLog};
    use crate::storage::writer::RecordLog;
    let werr = |path: &std::path::Path, cause: &dyn std::fmt::Display| ExportError::Write {
        path: path.to_path_buf(),
        cause: cause.to_string(),
    };
    match std::fs::read_dir(dir).map(|mut d| d.next().is_some()) {
        Ok(true) => return Err(werr(dir, &"not empty: export writes into a new directory")),
        Ok(false) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(werr(dir, &e)),
    }
    std::fs::create_dir_all(dir.join(layout)).map_err(|e| werr(dir, &e))?;
    let listing = jet.chains()?;
    let mut out = Exported {
        stream: jet.name().to_string(),
        chains: Vec::new(),
        stream_problems: Vec::new(),
    };
    if let Some(p) = jet.not_write_once() {
        out.stream_problems
            .push(format!("the stream is not write-once: {p}"));
    }
    if listing.others > 0 {
        out.stream_problems.push(format!(
            "{} subject(s) under {SUBJECT_PREFIX}. name no chain (not exported): {}",
            listing.others,
            listing.other_subjects.join(", ")
        ));
    }
    for (host, chain) in listing.chains {
        let cdir = dir.join(layout).join(&host).join(chain.to_string());
        let opts = LogOptions {
            segment_bytes: 256 << 20,
            write_behind: false,
        };
        let (mut log, _) =
            SegmentLog::open(&cdir, opts, |_, _, _| {}).map_err(|e| werr(&cdir, &e))?;
        let mut c = ExportedChain {
            host: host.clone(),
            chain: chain.to_string(),
            messages: 0,
            records: 0,
            last_stream_seq: 0,
            problem: None,
        };
        loop {
            let m = match jet.next(&host, chain, c.last_stream_seq) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e @ JetStreamError::Message { .. }) => {
                    c.problem = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            for r in &m.records {
                log.append_raw(r).map_err(|e| werr(&cdir, &e))?;
            }
            c.messages += 1;
            c.records += m.records.len() as u64;
            c.last_stream_seq = m.stream_seq;
        }
        log.sync().map_err(|e| werr(&cdir, &e))?;
        out.chains.push(c);
    }
    let manifest = serde_json::to_vec_pretty(&out).unwrap_or_default();
    crate::storage::fsutil::write_atomic(&dir.join(EXPORT_MANIFEST), &manifest, "export")
        .map_err(|e| werr(&dir.join(EXPORT_MANIFEST), &e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_servers_stream_and_files_but_never_a_password() {
        let c = JetStreamConfig::from_url(
            "nats://reader@10.0.0.1:4222,10.0.0.2:4222/EVIDENCE?ca=/c.pem&cert=/r.crt&key=/r.key&password_file=/pw",
        )
        .unwrap();
        assert_eq!(c.servers, ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]);
        assert_eq!(c.stream, "EVIDENCE");
        assert_eq!(c.user.as_deref(), Some("reader"));
        assert_eq!(c.password_file, Some(PathBuf::from("/pw")));
        assert_eq!(c.cert, Some(PathBuf::from("/r.crt")));
        let d = JetStreamConfig::from_url("nats://127.0.0.1:4222?plaintext=yes").unwrap();
        assert_eq!((d.stream.as_str(), d.user), (DEFAULT_STREAM, None));
        assert!(d.allow_plaintext);
        for (bad, says) in [
            ("nats://u:secret@h:1", "password"),
            ("nats://h:1?token=x", "unknown parameter"),
            ("nats://h:1?ca", "KEY=VALUE"),
            ("nats://h:1/a.b", "jetstream.stream"),
            ("nats://h:1?cert=/c", "cert and key"),
            ("nats://h:1?password_file=/p", "needs a user"),
            ("nats://h", "nats://HOST:PORT"),
            ("nats://h:1", "TLS is required"),
            ("nats://h:1?plaintext=1", "unknown parameter"),
            ("http://h:1", "not a nats:// URL"),
        ] {
            let e = JetStreamConfig::from_url(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn subjects_and_payloads_round_trip_and_junk_is_refused() {
        let id = ChainId([0xab; 16]);
        let s = subject("web-01.example.org", id);
        assert_eq!(parse_subject(&s), Some(("web-01.example.org".into(), id)));
        let upper = format!("logseal.chain.web-01.example.org.{}", "AB".repeat(16));
        for junk in [
            upper.as_str(),
            "logseal.chain.web",
            "logseal.chain.WEB.abab",
            "other.x.y",
            "logseal.chain..ab",
        ] {
            assert_eq!(parse_subject(junk), None, "{junk}");
        }
        let mut p = Vec::new();
        encode_frame(FRAME_RECORD, b"one", &mut p);
        encode_frame(FRAME_RECORD, b"two", &mut p);
        assert_eq!(
            decode_payload(&p).unwrap(),
            [b"one".to_vec(), b"two".to_vec()]
        );
        assert!(decode_payload(&p[..p.len() - 1]).is_err(), "a torn frame");
        assert!(decode_payload(&[]).is_err(), "no record");
        let mut other = Vec::new();
        encode_frame(crate::chain::frame::FRAME_REDACTED, &[0; 57], &mut other);
        assert!(decode_payload(&other).is_err(), "not a record frame");
    }
}
