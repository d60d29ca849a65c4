//! Human-readable and JSON output of `verify` and `inspect`.

use crate::chain::describe::safe;
use crate::chain::hash;
use crate::chain::hex;
use crate::chain::record::{Body, Payload, Record};
use crate::chain::verify::{
    Anchor, ChainReport, Finding, ReceiptOutcome, Report, Unattributed, Unverified, Verdict,
};
use crate::responder::verify_files::Skipped;
use crate::storage::segment::{Item, SegmentReader};
use crate::util::timefmt::rfc3339;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One sentence for a responder on a problem found outside any chain.
pub fn describe_unattributed(u: &Unattributed, files: &[PathBuf]) -> String {
    match u {
        Unattributed::Frame { problem, at } => format!(
            "{} [{} @ byte {}]",
            problem.describe(),
            file_name(files, at.file),
            at.offset
        ),
        Unattributed::BadSegment { file, reason } => {
            format!(
                "{}: not readable as a segment: {reason}",
                file_name(files, *file)
            )
        }
        Unattributed::NoRecords => "the input holds no record at all".into(),
        Unattributed::MissingChain {
            host,
            chain,
            seq,
            checkpoint_seq,
            quarantined,
        } => format!(
            "missing chain: the collector's checkpoint at seq {checkpoint_seq} of its checkpoint log says it held chain {chain} of host {} up to seq {seq}; the store does not hold it (outside checkpoints/ and quarantine/){}",
            safe(host),
            quarantined
                .as_ref()
                .map(|q| format!(" (its records are in {}: moved into quarantine)", safe(q)))
                .unwrap_or_default()
        ),
        Unattributed::CheckpointLogNotBelieved { reason } => format!(
            "checkpoint log not believed: {}; the store's chains were not checked against it",
            safe(reason)
        ),
        Unattributed::WitnessedCheckpointMissing { chain, seq, reason } => format!(
            "the witnessed checkpoint (seal {seq} of the checkpoint log's chain {chain}) is not in the store's log: {}",
            safe(reason)
        ),
        Unattributed::ForkRecorded {
            host,
            chain,
            epoch,
            key,
            stored_seq,
            received_seq,
            checkpoint_seq,
        } => format!(
            "fork recorded: the checkpoint log (seq {checkpoint_seq}) holds the collector's proof that key {key} of chain {chain} of host {} signed two seals of epoch {epoch} (seq {stored_seq}, stored, and seq {received_seq}, refused) over two histories: the host's key was used twice (its state restored from a copy, or stolen); its records from epoch {epoch} on are disputed",
            safe(host)
        ),
        Unattributed::NotWitnessed {
            witness,
            collectors,
        } => format!(
            "not witnessed: the checkpoint log of {} holds no checkpoint of collector {}: nothing shows this store's log was not replaced",
            safe(witness),
            collectors.iter().map(|c| safe(c)).collect::<Vec<_>>().join(", ")
        ),
        Unattributed::NoCheckpointLog => "no checkpoint log: the store has no chain in checkpoints/log/ (the collector's own chain), so a chain cut, rewritten or deleted could not be seen; give --no-checkpoints to verify a store written before checkpoints existed".into(),
    }
}

fn file_name(files: &[PathBuf], i: usize) -> String {
    files.get(i).map(|p| safe_path(p)).unwrap_or_default()
}

fn location(f: &Finding, files: &[PathBuf]) -> String {
    match f.at {
        Some(at) => format!(" [{} @ byte {}]", file_name(files, at.file), at.offset),
        None => String::new(),
    }
}

fn time_span(c: &ChainReport) -> String {
    match (c.first_time_ns, c.last_time_ns) {
        (Some(a), Some(b)) => format!("{} .. {}", rfc3339(a), rfc3339(b)),
        _ => "-".into(),
    }
}

fn ranges(r: &[(u64, u64)]) -> String {
    r.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}..={b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the text report of `verify`.
pub fn verify_text(out: &mut impl Write, report: &Report, files: &[PathBuf]) -> io::Result<()> {
    writeln!(
        out,
        "verified {} file(s), {} chain(s)",
        files.len(),
        report.chains.len()
    )?;
    for c in &report.chains {
        chain_summary(out, c)?;
        chain_findings(out, c, files)?;
    }
    for c in &report.checkpoint_log {
        writeln!(out)?;
        write!(out, "checkpoint log of the collector (checkpoints/):")?;
        chain_summary(out, c)?;
        chain_findings(out, c, files)?;
    }
    for f in &report.unattributed {
        writeln!(
            out,
            "PROBLEM outside any chain: {}",
            describe_unattributed(f, files)
        )?;
    }
    if report.unattributed_not_listed > 0 {
        writeln!(
            out,
            "... and {} more problem(s) outside any chain",
            report.unattributed_not_listed
        )?;
    }
    if let Some(r) = &report.receipt {
        let said = match r {
            ReceiptOutcome::Matches => {
                "matches: the chain holds what the collector acknowledged".to_string()
            }
            ReceiptOutcome::Fork => {
                "FORK: the chain differs from what the collector acknowledged (see its problems)"
                    .to_string()
            }
            ReceiptOutcome::Cut => {
                "CUT: the chain ends before what the collector acknowledged (see its problems)"
                    .to_string()
            }
            ReceiptOutcome::Unchecked { reason } => format!("NOT CHECKED: {reason}"),
            _ => "unknown".to_string(),
        };
        writeln!(out, "receipt: {said}")?;
    }
    writeln!(out)?;
    writeln!(out, "RESULT: {}", result_word(report))
}

/// The text report's lines on one chain: its verdict and what it holds.
fn chain_summary(out: &mut impl Write, c: &ChainReport) -> io::Result<()> {
    let verdict = match c.verdict {
        Verdict::Intact => "INTACT".to_string(),
        Verdict::Pending => "INTACT UP TO A PENDING TAIL".to_string(),
        Verdict::Unanchored => {
            "UNANCHORED (no Genesis: cannot be tied to a genesis key)".to_string()
        }
        Verdict::Broken => format!(
            "BROKEN ({} problem(s))",
            c.problems.len() as u64 + c.problems_not_listed
        ),
    };
    writeln!(out)?;
    writeln!(
        out,
        "chain {}  host {}  {verdict}",
        c.chain,
        c.host.as_deref().map_or("?".into(), safe)
    )?;
    if let Some(fp) = &c.genesis_fingerprint {
        let how = match c.anchor {
            Anchor::Trusted => "trusted (a trust anchor of this host)",
            Anchor::FromData => "taken from the data itself: no trust anchor given; compare this fingerprint with a pinned one or pass --trust-file",
            Anchor::Untrusted => "NOT a trust anchor of this host",
            Anchor::None => "",
        };
        writeln!(out, "  genesis key  {fp} ({how})")?;
    }
    if let Some(s) = c.unanchored_from {
        writeln!(
            out,
            "  start        seq {s}, without its Genesis (an agent spool trimmed after acknowledgement, or a partial copy): verify the collector's store for the whole chain"
        )?;
        if let Some(k) = &c.key_from_data {
            writeln!(
                out,
                "  key chain    from the seal at seq {} (epoch {}, signer {}), taken from the data",
                k.seq, k.epoch, k.fingerprint
            )?;
        }
    }
    if let Some(o) = &c.origin {
        let pred = c
            .predecessor
            .as_ref()
            .map(|p| format!(", follows chain {p}"))
            .unwrap_or_default();
        writeln!(out, "  origin       {o}{pred}")?;
    }
    writeln!(
        out,
        "  records      {} (verified {}, events {}, seals {}, losses {} accounting for {} lost events, redacted {})",
        c.records, c.verified, c.events, c.seals, c.losses, c.lost_events, c.redacted
    )?;
    writeln!(
        out,
        "  seq          {}..={}, key epochs {}, last accepted seal at seq {}",
        c.first_seq.map_or("-".into(), |s| s.to_string()),
        c.last_seq.map_or("-".into(), |s| s.to_string()),
        c.epochs,
        c.last_seal_seq.map_or("-".into(), |s| s.to_string())
    )?;
    if !c.redacted_seqs.is_empty() {
        writeln!(out, "  redacted     seq {}", ranges(&c.redacted_seqs))?;
    }
    writeln!(out, "  time         {}", time_span(c))?;
    writeln!(
        out,
        "  end          {}",
        if c.ended_cleanly {
            "clean shutdown, sealed"
        } else {
            "no clean shutdown recorded (writer still running, crashed, or tail removed)"
        }
    )?;
    Ok(())
}

/// The text report's lines on one chain: what is pending, broken,
/// unverified or odd in it.
fn chain_findings(out: &mut impl Write, c: &ChainReport, files: &[PathBuf]) -> io::Result<()> {
    if let Some((a, b)) = c.pending {
        writeln!(
            out,
            "  PENDING      seq {a}..={b}: after the newest seal of a live chain, waiting for their seal; NOT verified"
        )?;
    }
    for f in &c.problems {
        writeln!(
            out,
            "  PROBLEM {}{}",
            f.problem.describe(),
            location(f, files)
        )?;
    }
    if c.problems_not_listed > 0 {
        writeln!(
            out,
            "  ... and {} more problem(s) not listed",
            c.problems_not_listed
        )?;
    }
    for r in &c.unverified {
        if matches!(r.why, Unverified::Unsealed) && c.pending.is_some() {
            continue;
        }
        writeln!(
            out,
            "  UNVERIFIED seq {}..={}: {}",
            r.first_seq,
            r.last_seq,
            r.why.describe()
        )?;
    }
    if c.unverified_not_listed > 0 {
        writeln!(
            out,
            "  ... and {} more unverified range(s) not listed",
            c.unverified_not_listed
        )?;
    }
    for w in &c.warnings {
        writeln!(out, "  warning {}", w.describe())?;
    }
    if c.warnings_not_listed > 0 {
        writeln!(out, "  ... and {} more warning(s)", c.warnings_not_listed)?;
    }
    Ok(())
}

/// The run's outcome, named as the worst chain verdict it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Exit 0: every chain intact (with pending tails or not).
    Intact,
    /// A broken chain, or a finding outside the chains.
    Broken,
    /// Nothing broken, but a chain without its Genesis.
    Unanchored,
    /// Nothing broken, but the receipt given could not be compared.
    ReceiptUnchecked,
}

impl Outcome {
    fn of(report: &Report) -> Outcome {
        if report.intact() {
            Outcome::Intact
        } else if report.chains.iter().any(|c| c.verdict == Verdict::Broken)
            || !report.unattributed.is_empty()
            || report.unattributed_not_listed > 0
            || matches!(
                report.receipt,
                Some(ReceiptOutcome::Fork | ReceiptOutcome::Cut)
            )
        {
            Outcome::Broken
        } else if matches!(report.receipt, Some(ReceiptOutcome::Unchecked { .. })) {
            Outcome::ReceiptUnchecked
        } else {
            Outcome::Unanchored
        }
    }

    /// `result` of the JSON document.
    fn name(self) -> &'static str {
        match self {
            Outcome::Intact => "intact",
            Outcome::Broken => "broken",
            Outcome::Unanchored => "unanchored",
            Outcome::ReceiptUnchecked => "receipt-unchecked",
        }
    }
}

fn result_word(report: &Report) -> &'static str {
    match Outcome::of(report) {
        Outcome::Intact if report.chains.iter().any(|c| c.verdict == Verdict::Pending) => {
            "intact (with pending tails, not yet sealed)"
        }
        Outcome::Intact => "intact",
        Outcome::Broken => "BROKEN",
        Outcome::Unanchored => "NOT PROVEN (unanchored chain)",
        Outcome::ReceiptUnchecked => "NOT PROVEN (the receipt could not be checked)",
    }
}

/// The JSON document of `verify`.
pub fn verify_json<'a>(
    report: &'a Report,
    files: &[PathBuf],
    skipped: &[Skipped],
) -> VerifyJson<'a> {
    VerifyJson {
        chains: OneByOne(&report.chains),
        files: files.iter().map(|p| p.display().to_string()).collect(),
        result: Outcome::of(report).name(),
        skipped_files: skipped
            .iter()
            .map(|s| json!({"path": s.path.display().to_string(), "why": s.why.describe()}))
            .collect(),
        trust_anchors: report.trust_anchors,
        unattributed: OneByOne(&report.unattributed),
        unattributed_not_listed: report.unattributed_not_listed,
        checkpoint_log: OneByOne(&report.checkpoint_log),
        receipt: report.receipt.as_ref(),
        receipt_of: None,
    }
}

/// What a receipt says, for `verify --json` (`receipt_of`).
pub fn receipt_json(r: &crate::chain::receipt::Receipt) -> Value {
    json!({
        "collector": r.collector,
        "log_chain": r.log_chain.to_string(),
        "log_epoch": r.log_epoch,
        "log_key": crate::chain::hex::encode(&r.log_key),
        "log_key_fingerprint": crate::chain::hash::fingerprint(&r.log_key),
        "log_next_seq": r.log_next_seq,
        "host": r.host,
        "chain": r.chain.to_string(),
        "seq": r.seq,
        "head": crate::chain::hex::encode(&r.head),
    })
}

/// The JSON report of `verify`, written from the report one chain at a time
/// (never the whole report as a JSON tree: 100 000 chains are written in the
/// memory they already take).
#[derive(Serialize)]
pub struct VerifyJson<'a> {
    chains: OneByOne<'a, crate::chain::verify::ChainReport>,
    files: Vec<String>,
    result: &'static str,
    skipped_files: Vec<Value>,
    trust_anchors: bool,
    unattributed: OneByOne<'a, crate::chain::verify::Unattributed>,
    unattributed_not_listed: u64,
    /// A store's checkpoint log, its chains (docs/FORMAT.md §7).
    checkpoint_log: OneByOne<'a, crate::chain::verify::ChainReport>,
    /// What checking a receipt found (docs/FORMAT.md §7.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<&'a ReceiptOutcome>,
    /// The receipt checked against (`verify --receipt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_of: Option<Value>,
}

/// A list written item by item, each through a JSON tree: keys sorted, and a
/// key written by a tag and by a flattened field once (the tree keeps the
/// last), as the report has always been.
pub struct OneByOne<'a, T>(&'a [T]);

impl<T: Serialize> Serialize for OneByOne<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&serde_json::to_value(item).map_err(S::Error::custom)?)?;
        }
        seq.end()
    }
}

/// What `inspect` shows of a journald entry.
struct JournalSummary {
    unit: Option<String>,
    identifier: Option<String>,
    pid: Option<String>,
    priority: Option<&'static str>,
    message: Option<String>,
    seqnum: Option<String>,
    cursor: Option<String>,
}

impl JournalSummary {
    fn of(fields: &[(&str, &[u8])]) -> JournalSummary {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        JournalSummary {
            unit: get("_SYSTEMD_UNIT").or_else(|| get("UNIT")),
            identifier: get("SYSLOG_IDENTIFIER").or_else(|| get("_COMM")),
            pid: get("SYSLOG_PID").or_else(|| get("_PID")),
            priority: get("PRIORITY")
                .and_then(|p| p.parse::<usize>().ok())
                .and_then(|p| crate::ingest::syslog::SEVERITIES.get(p).copied()),
            message: get("MESSAGE"),
            seqnum: get(crate::ingest::journal::F_SEQNUM),
            cursor: get(crate::ingest::journal::F_CURSOR),
        }
    }
}

/// A path, safe to print (see [`safe`]).
pub fn safe_path(p: &Path) -> String {
    safe(&p.display().to_string())
}

/// One record as a JSON object.
pub fn record_json(r: &Record<'_>, file: &Path, offset: u64) -> Value {
    let mut v = json!({
        "file": file.display().to_string(),
        "offset": offset,
        "chain": r.chain_id.to_string(),
        "seq": r.seq,
        "kind": r.kind().name(),
        "time": rfc3339(r.time_ns),
        "time_ns": r.time_ns,
    });
    let m = v.as_object_mut().expect("object literal");
    let fields = match &r.body {
        Body::Genesis {
            host,
            agent,
            pk0,
            origin,
            predecessor,
            note,
        } => json!({
            "host": host, "agent": agent, "origin": origin.name(), "note": note,
            "genesis_key": hex::encode(pk0), "genesis_fingerprint": hash::fingerprint(pk0),
            "predecessor": predecessor.as_ref().map(|p| json!({
                "chain": p.chain_id.to_string(), "last_seq": p.last_seq, "head": hex::encode(&p.head),
            })),
        }),
        Body::Event {
            source,
            flags,
            peer,
            original_len,
            payload,
        } => {
            payload_json(m, payload, r.time_ns);
            json!({
                "source": source.name(), "peer": peer, "flags": flags,
                "original_len": original_len,
            })
        }
        Body::Seal {
            epoch,
            covers_head,
            signer,
            next_pk,
            ..
        } => json!({
            "epoch": epoch, "covers_head": hex::encode(covers_head),
            "signer": hash::fingerprint(signer), "next_key": hash::fingerprint(next_pk),
        }),
        Body::Loss {
            source,
            reason,
            count,
            first_ns,
            last_ns,
            detail,
        } => json!({
            "source": source.name(), "reason": reason.name(), "count": count,
            "first": rfc3339(*first_ns), "last": rfc3339(*last_ns), "detail": detail,
        }),
        Body::Lifecycle {
            event,
            agent,
            dropped_bytes,
            detail,
        } => json!({
            "event": event.name(), "agent": agent, "dropped_bytes": dropped_bytes, "detail": detail,
        }),
    };
    if let Value::Object(fields) = fields {
        // An absent optional field is left out, not written as null.
        m.extend(fields.into_iter().filter(|(_, v)| !v.is_null()));
    }
    v
}

/// An event's payload, into its JSON object: the message (and its syslog
/// fields) or the journal entry's fields.
fn payload_json(m: &mut serde_json::Map<String, Value>, payload: &Payload<'_>, time_ns: i64) {
    match payload {
        Payload::Raw(b) => {
            m.insert("message".into(), json!(String::from_utf8_lossy(b)));
            if std::str::from_utf8(b).is_err() {
                m.insert("raw_hex".into(), json!(hex::encode(b)));
            }
            let p = crate::ingest::syslog::parse(b, time_ns);
            if p.format != crate::ingest::syslog::Format::Unknown {
                m.insert(
                    "syslog".into(),
                    json!({
                        "format": match p.format {
                            crate::ingest::syslog::Format::Rfc5424 => "rfc5424",
                            crate::ingest::syslog::Format::Rfc3164 => "rfc3164",
                            _ => "pri-only",
                        },
                        "facility": p.facility,
                        "severity": p.severity.map(|s| crate::ingest::syslog::SEVERITIES[s as usize]),
                        "timestamp": p.time_ns.map(rfc3339),
                        "host": p.host,
                        "app": p.app,
                        "procid": p.procid,
                        "msgid": p.msgid,
                        "structured_data": p.structured_data,
                        "msg": String::from_utf8_lossy(p.msg),
                    }),
                );
            }
        }
        Payload::Fields(fields) => {
            // Every field in order; a value that is not UTF-8 as {"hex": …}.
            let f: Vec<Value> = fields
                .iter()
                .map(|(k, v)| match std::str::from_utf8(v) {
                    Ok(s) => json!([k, s]),
                    Err(_) => json!([k, {"hex": hex::encode(v)}]),
                })
                .collect();
            m.insert("fields".into(), Value::Array(f));
            let j = JournalSummary::of(fields);
            m.insert(
                "journal".into(),
                json!({
                    "unit": j.unit,
                    "identifier": j.identifier,
                    "pid": j.pid,
                    "priority": j.priority,
                    "message": j.message,
                    "seqnum": j.seqnum,
                    "cursor": j.cursor,
                }),
            );
        }
    }
}

/// One record as a line of text: seq, kind, time, source, message. It is
/// written from the record's JSON object ([`record_json`]), so each field is
/// rendered (fingerprints, times, names) in one place for both views.
pub fn record_text(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let head = format!("{:>8} {:<9} {}", n("seq"), s("kind"), s("time"));
    match s("kind") {
        "genesis" => {
            let mut line = format!(
                "{head} host={} origin={} key={}",
                safe(s("host")),
                s("origin"),
                s("genesis_fingerprint")
            );
            if let Some(p) = v.get("predecessor") {
                let chain = p.get("chain").and_then(Value::as_str).unwrap_or("");
                let last = p.get("last_seq").and_then(Value::as_u64).unwrap_or(0);
                let _ = write!(line, " follows={chain}@{last}");
            }
            if !s("note").is_empty() {
                let _ = write!(line, " note={:?}", s("note"));
            }
            line
        }
        "event" => {
            let (msg, who) = match v.get("journal") {
                None => {
                    let peer = if s("peer").is_empty() {
                        String::new()
                    } else {
                        format!(" {}", safe(s("peer")))
                    };
                    (safe(s("message")), peer)
                }
                // unit, identifier[pid], priority: message
                Some(j) => {
                    let j = |k: &str| j.get(k).and_then(Value::as_str).map(safe);
                    let mut who = String::new();
                    for (key, form) in [("unit", " "), ("identifier", " "), ("pid", "[")] {
                        if let Some(x) = j(key) {
                            let _ = write!(who, "{form}{x}{}", if form == "[" { "]" } else { "" });
                        }
                    }
                    if let Some(p) = j("priority") {
                        let _ = write!(who, " {p}:");
                    }
                    (j("message").unwrap_or_default(), who)
                }
            };
            let trunc = v
                .get("original_len")
                .and_then(Value::as_u64)
                .map(|n| format!(" [truncated from {n} bytes]"))
                .unwrap_or_default();
            format!("{head} {}{who} {msg}{trunc}", s("source"))
        }
        "seal" => format!(
            "{head} epoch={} signer={} next={}",
            n("epoch"),
            s("signer"),
            s("next_key")
        ),
        "loss" => format!(
            "{head} {} lost {} ({}) {} .. {} {}",
            s("source"),
            n("count"),
            s("reason"),
            s("first"),
            s("last"),
            safe(s("detail"))
        ),
        "lifecycle" => format!("{head} {} {}", s("event"), safe(s("detail"))),
        other => format!("{head} {other}"),
    }
}

/// Writes every record of `files`, as text lines or one JSON array (well
/// formed whatever the files hold). Damaged bytes are shown, not skipped
/// silently; `skipped` files are listed; a file that cannot be read is an
/// entry of its own and the others are still shown. Returns the number of
/// unreadable files.
pub fn inspect(
    out: &mut impl Write,
    files: &[PathBuf],
    skipped: &[crate::responder::verify_files::Skipped],
    json_out: bool,
) -> io::Result<usize> {
    let mut problems = 0;
    let mut first = true;
    // One entry: a JSON object (comma-separated inside the array) or a line.
    let mut emit = |out: &mut dyn Write, v: Option<Value>, line: &str| -> io::Result<()> {
        match v {
            Some(v) => {
                if !first {
                    write!(out, ",")?;
                }
                writeln!(out)?;
                serde_json::to_writer(&mut *out, &v)?;
            }
            None => writeln!(out, "{line}")?,
        }
        first = false;
        Ok(())
    };
    if json_out {
        write!(out, "[")?;
    }
    for s in skipped {
        emit(
            out,
            json_out.then(|| json!({"file": s.path.display().to_string(), "kind": "skipped", "reason": s.why.describe()})),
            &format!("# skipped {} ({})", safe_path(&s.path), s.why.describe()),
        )?;
    }
    for path in files {
        if !json_out && files.len() > 1 {
            writeln!(out, "# {}", safe_path(path))?;
        }
        // A file that cannot be read (or stops being readable) is an entry of
        // its own; the other files are still shown.
        let unreadable = |e: &str| {
            (
                json_out.then(|| json!({"file": path.display().to_string(), "kind": "unreadable", "reason": e})),
                format!("       ! unreadable: {}: {}", safe_path(path), safe(e)),
            )
        };
        let failure = match SegmentReader::open(path) {
            Err(e) => Some(e.to_string()),
            Ok(mut r) => loop {
                match r.next_item() {
                    Ok(Some(item)) => {
                        let (v, line) = item_entry(item, path, json_out);
                        emit(out, v, &line)?;
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e.to_string()),
                }
            },
        };
        if let Some(e) = failure {
            problems += 1;
            let (v, line) = unreadable(&e);
            emit(out, v, &line)?;
        }
    }
    if json_out {
        writeln!(out, "\n]")?;
    }
    Ok(problems)
}

/// One item of a segment as `inspect` shows it: a JSON object (with
/// `json_out`) and a text line.
fn item_entry(item: Item<'_>, path: &Path, json_out: bool) -> (Option<Value>, String) {
    let torn = matches!(item, Item::TornTail { .. });
    let v: Option<Value>;
    let line: String;
    match item {
        Item::Frame {
            offset,
            frame_type: crate::chain::frame::FRAME_RECORD,
            payload,
        } => match Record::decode(payload) {
            Ok(rec) => {
                let j = record_json(&rec, path, offset);
                line = record_text(&j);
                v = json_out.then_some(j);
            }
            Err(e) => {
                v = json_out.then(|| json!({"file": path.display().to_string(), "offset": offset, "kind": "malformed", "reason": e.to_string()}));
                line = format!("       ? malformed record at byte {offset}: {e}");
            }
        },
        Item::Frame {
            offset,
            frame_type,
            payload,
        } => {
            let seq = payload
                .get(16..24)
                .map(|s| u64::from_be_bytes(s.try_into().unwrap_or([0; 8])));
            v = json_out.then(|| json!({"file": path.display().to_string(), "offset": offset, "kind": "redacted", "frame_type": frame_type, "seq": seq}));
            line = format!(
                "{:>8} redacted  (frame type {frame_type:#04x} at byte {offset})",
                seq.map_or("?".into(), |s| s.to_string())
            );
        }
        // Damage inside the file, or a torn tail at its end.
        Item::Corrupt {
            offset,
            skipped: bytes,
            reason,
        }
        | Item::TornTail {
            offset,
            bytes,
            reason,
        } => {
            let (kind, what) = if torn {
                ("torn-tail", "torn tail")
            } else {
                ("damaged", "damaged")
            };
            v = json_out.then(|| json!({"file": path.display().to_string(), "offset": offset, "kind": kind, "bytes": bytes, "reason": reason}));
            line = format!("       ! {what}: {bytes} bytes at byte {offset} ({reason})");
        }
    }
    (v, line)
}
