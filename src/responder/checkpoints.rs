//! A collector store's checkpoint log, read for `logseal verify STORE`
//! (docs/FORMAT.md §7).
//!
//! The log (`STORE/checkpoints/log/`) is verified on its own first, with the
//! same options (trust anchors pin it like any chain). Its checkpoints are
//! believed only if every chain in it is intact (or pending), nothing else is
//! found in it, none of its records is redacted and every sealed statement
//! (checkpoint, fork, witnessed block) decodes — and then only those its
//! accepted seals cover. Every chain of the store must then still match its
//! latest checkpoint. A log that is missing or not believed is a finding that
//! fails the run (a store from before checkpoints is verified with
//! `--no-checkpoints`, which says so); so is a fork the log records
//! (`fork-recorded`). A store is also checked against the seals of its log
//! that peers witnessed (`--witnessed-by`: `witnessed-checkpoint-missing`,
//! `not-witnessed`).

use super::verify_files::{self, InputError, SkipReason, Skipped};
use super::witness::{Witness, WitnessError, WitnessedSeals};
use crate::chain::checkpoint::{self, Statement};
use crate::chain::receipt::Receipt;
use crate::chain::record::{Body, Payload, Source};
use crate::chain::verify::{
    Anchor, ChainReport, Checkpoints, Options, Receipted, Report, Unattributed, Verdict,
};
use crate::chain::ChainId;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// What the checkpoint log of a store says, and its own verdicts.
pub struct StoreLog {
    /// The log's files.
    files: Vec<PathBuf>,
    /// Its chains' reports (none: no log).
    reports: Vec<ChainReport>,
    /// Findings for the run: the log missing or not believed, and what the
    /// log's verification found outside its chains (file indices into
    /// `files`).
    findings: Vec<Unattributed>,
    /// The checkpoints the store's chains are checked against (none: nothing
    /// in the log is believed).
    checkpoints: Option<Checkpoints>,
    /// The forks the log records (§7.3), and witnesses that witnessed
    /// nothing of it: findings of the run that leave the log believed.
    forks: Vec<Unattributed>,
    /// The peers' checkpoint seals it witnessed (§7.4), every one.
    witnessed: WitnessedSeals,
}

/// What a believed log's sealed statements say.
#[derive(Default)]
struct Statements {
    checkpoints: Checkpoints,
    forks: Vec<Unattributed>,
    forks_seen: std::collections::HashSet<(ChainId, u64, u64, u64)>,
    witnessed: WitnessedSeals,
}

impl StoreLog {
    /// The log's files.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Its chains' reports.
    pub fn reports(&self) -> &[ChainReport] {
        &self.reports
    }

    /// What makes it missing or not believed.
    pub fn findings(&self) -> &[Unattributed] {
        &self.findings
    }

    /// The key the log's chain `chain` names for `epoch`: its Genesis key
    /// (epoch 0), or the next key of its seal of the epoch before, among its
    /// accepted seals (those up to `last_seal_seq`).
    pub fn epoch_key(
        &self,
        chain: ChainId,
        epoch: u64,
        last_seal_seq: Option<u64>,
    ) -> Result<Option<[u8; 32]>, InputError> {
        self.find_record(|payload| {
            let rec = crate::chain::Record::decode(payload).ok()?;
            if rec.chain_id != chain {
                return None;
            }
            match rec.body {
                Body::Genesis { pk0, .. } if rec.seq == 0 && epoch == 0 => Some(pk0),
                Body::Seal {
                    epoch: e, next_pk, ..
                } if e.checked_add(1) == Some(epoch)
                    && last_seal_seq.is_some_and(|l| rec.seq <= l) =>
                {
                    Some(next_pk)
                }
                _ => None,
            }
        })
    }

    /// The first record of the log's files, in order, for which `f` says
    /// something.
    fn find_record<T>(
        &self,
        mut f: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, InputError> {
        verify_files::each_record(&self.files, |payload, _, _| match f(payload) {
            Some(t) => ControlFlow::Break(t),
            None => ControlFlow::Continue(()),
        })
    }

    /// The encoded record at `seq` of the log's chain `chain`, as the first
    /// file holding it stores it.
    pub fn record_at(&self, chain: ChainId, seq: u64) -> Result<Option<Vec<u8>>, InputError> {
        self.find_record(
            |payload| match crate::chain::record::decode_header_only(payload) {
                Ok(h) if h.chain_id == chain && h.seq == seq => Some(payload.to_vec()),
                _ => None,
            },
        )
    }
}

/// Whether a receipt's key is its collector's (docs/FORMAT.md §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTie {
    /// The collector's checkpoint log names the receipt's key for its epoch.
    Tied,
    /// It does not, or cannot be believed: why.
    NotTied(String),
}

/// Ties a receipt's key to the checkpoint log of the collector's `store`
/// (verified with `options`, its anchors included): the log must be
/// believed, pinned by a trust anchor, hold the receipt's log chain under
/// the collector's name, and
/// name the receipt's key for its epoch — the Genesis key for epoch 0, else
/// the next key of an accepted seal of the epoch before.
pub fn receipt_key(store: &Path, r: &Receipt, options: &Options) -> Result<KeyTie, InputError> {
    let log = read(store, options)?;
    let not = |why: String| Ok(KeyTie::NotTied(why));
    if let Some(f) = log.findings.first() {
        return not(format!(
            "the checkpoint log of {} is not believed: {}",
            super::report::safe_path(store),
            super::report::describe_unattributed(f, &log.files)
        ));
    }
    let id = r.log_chain.to_string();
    let Some(c) = log.reports.iter().find(|c| c.chain == id) else {
        return not(format!(
            "the checkpoint log of {} holds no chain {id}",
            super::report::safe_path(store)
        ));
    };
    if c.anchor != Anchor::Trusted {
        return not(
            "the collector's checkpoint log is not pinned (give --trust-file with its line, \
             `logseal collector --print-genesis`): a log made elsewhere would vouch for any key"
                .to_string(),
        );
    }
    if c.host.as_deref() != Some(r.collector.as_str()) {
        return not(format!(
            "the log's chain {id} is collector {:?}'s, the receipt names {:?}",
            c.host.as_deref().unwrap_or(""),
            r.collector
        ));
    }
    let named = log.epoch_key(r.log_chain, r.log_epoch, c.last_seal_seq)?;
    let fp = crate::chain::hash::fingerprint;
    Ok(match named {
        Some(k) if k == r.log_key => KeyTie::Tied,
        Some(k) => KeyTie::NotTied(format!(
            "the log names key {} for epoch {}, the receipt's key is {}",
            fp(&k),
            r.log_epoch,
            fp(&r.log_key)
        )),
        None => KeyTie::NotTied(format!(
            "the log's accepted seals name no key for epoch {} yet",
            r.log_epoch
        )),
    })
}

/// The collector's latest checkpoint of a chain of the input, taken as its
/// receipt (`logseal verify PATH --collector STORE`, docs/FORMAT.md §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromCheckpoint {
    /// What it says of the chain, to check the input against.
    pub receipted: Receipted,
    /// The collector (its log's Genesis host).
    pub collector: String,
    /// Seq of the checkpoint in the collector's log.
    pub checkpoint_seq: u64,
}

/// Whether the collector's checkpoints can judge the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointTie {
    /// Its newest checkpoint of one of the input's chains.
    Tied(FromCheckpoint),
    /// None can: why.
    NotTied(String),
}

/// Most chains of the input looked up in the checkpoints.
const MAX_INPUT_CHAINS: usize = 1 << 16;

/// The newest believed checkpoint of `store` (its log believed and pinned,
/// as for a receipt's key) that names a chain found in `files` — of those,
/// the one whose checkpoint has the highest seq in the log (then the higher
/// chain id).
pub fn checkpoint_as_receipt(
    store: &Path,
    files: &[PathBuf],
    options: &Options,
) -> Result<CheckpointTie, InputError> {
    let log = read(store, options)?;
    let not = |why: String| Ok(CheckpointTie::NotTied(why));
    let shown = super::report::safe_path(store);
    if let Some(f) = log.findings.first() {
        return not(format!(
            "the checkpoint log of {shown} is not believed: {}",
            super::report::describe_unattributed(f, &log.files)
        ));
    }
    if log.reports.iter().any(|c| c.anchor != Anchor::Trusted) {
        return not(
            "the collector's checkpoint log is not pinned (give --trust-file with its line, \
             `logseal collector --print-genesis`): a log made elsewhere would vouch for anything"
                .to_string(),
        );
    }
    let Some(k) = log.checkpoints.as_ref() else {
        return not(format!("the checkpoint log of {shown} holds no checkpoint"));
    };
    let mut chains = std::collections::HashSet::new();
    verify_files::each_record(files, |payload, _, _| {
        if let Ok(h) = crate::chain::record::decode_header_only(payload) {
            if chains.len() < MAX_INPUT_CHAINS {
                chains.insert(h.chain_id);
            }
        }
        ControlFlow::<()>::Continue(())
    })?;
    let newest = k
        .expected
        .iter()
        .filter(|(c, _)| chains.contains(*c))
        .max_by_key(|(c, e)| (e.checkpoint_seq, **c));
    let Some((chain, e)) = newest else {
        return not(format!(
            "the checkpoints of {shown} name none of the input's {} chain(s)",
            chains.len()
        ));
    };
    Ok(CheckpointTie::Tied(FromCheckpoint {
        receipted: Receipted {
            host: e.host.clone(),
            chain: *chain,
            seq: e.seq,
            head: e.head,
        },
        collector: log
            .reports
            .first()
            .and_then(|c| c.host.clone())
            .unwrap_or_default(),
        checkpoint_seq: e.checkpoint_seq,
    }))
}

/// The newest accepted seal of `store`'s checkpoint log, to be witnessed
/// (§7.1): the log must be believed (verified with `options`, its anchors
/// included).
pub fn newest_seal(store: &Path, options: &Options) -> Result<Witness, WitnessError> {
    let log = read(store, options)?;
    let not = |reason: String| WitnessError::NotBelieved {
        store: store.to_path_buf(),
        reason,
    };
    if let Some(f) = log.findings.first() {
        return Err(not(super::report::describe_unattributed(f, &log.files)));
    }
    let mut newest: Option<Witness> = None;
    for c in &log.reports {
        // A block holds the host on one line, as text.
        if c.host
            .as_deref()
            .is_some_and(|h| h.contains(char::is_control))
        {
            return Err(not(format!(
                "its chain {} names a host with control characters",
                c.chain
            )));
        }
        let (Some(seq), Some(chain)) = (c.last_seal_seq, super::witness::chain_id(&c.chain)) else {
            continue;
        };
        let Some(record) = log.record_at(chain, seq)? else {
            continue;
        };
        let time_ns = crate::chain::Record::decode(&record).map_or(i64::MIN, |r| r.time_ns);
        if newest.as_ref().is_some_and(|n| n.time_ns >= time_ns) {
            continue;
        }
        newest = Some(Witness {
            host: c.host.clone().unwrap_or_default(),
            genesis: c.genesis_fingerprint.clone().unwrap_or_default(),
            chain,
            seq,
            time_ns,
            record,
        });
    }
    newest.ok_or_else(|| not("no chain of the log has an accepted seal yet".into()))
}

/// The peers' checkpoints the collector of `witness` (its store) witnessed
/// (§7.4): its checkpoint log must be believed and pinned by a trust anchor
/// (in `options`) — else whoever made that log would decide what is
/// missing.
pub fn witnessed_by(witness: &Path, options: &Options) -> Result<WitnessedSeals, WitnessError> {
    let log = read(witness, options)?;
    let not = |reason: String| WitnessError::NotAWitness {
        store: witness.to_path_buf(),
        reason,
    };
    if let Some(f) = log.findings.first() {
        return Err(not(super::report::describe_unattributed(f, &log.files)));
    }
    if let Some(c) = log.reports.iter().find(|c| c.anchor != Anchor::Trusted) {
        return Err(not(format!(
            "its chain {} is not pinned (give --trust-file with the witness's line, \
             `logseal collector --print-genesis`): a log made elsewhere could name any checkpoint",
            c.chain
        )));
    }
    Ok(log.witnessed)
}

/// What `logseal verify PATHS` verifies and reports: the paths expanded into
/// segment files (a store's checkpoint log first, and its files appended
/// after), `verify` run over them, and the report with what the checkpoint
/// log says added. `force`: the single path is a store whatever it holds;
/// `checkpoints`: false for a store from before checkpoints; `witnessed`:
/// seals of the log kept elsewhere, each of which the log must still hold
/// (§7.1; they need a store); `witnesses`: per witness store, the
/// checkpoints it witnessed (§7.4, [`witnessed_by`]) — those of this
/// store's collector must be held as well, and there must be one.
pub fn verify_paths(
    paths: &[PathBuf],
    mut options: Options,
    (force, checkpoints): (bool, bool),
    (witnessed, witnesses): (&[Witness], &[(PathBuf, WitnessedSeals)]),
    verify: impl FnOnce(&[PathBuf], Options) -> Result<Report, InputError>,
) -> Result<(Report, Vec<PathBuf>, Vec<Skipped>), InputError> {
    let mut log = match checkpoints {
        true => prepare(paths, &mut options, force)?,
        false => None,
    };
    // (A store without a log is `no-checkpoint-log` already.)
    if let Some((_, log)) = log.as_mut().filter(|(_, l)| !l.reports.is_empty()) {
        let collectors: Vec<String> = log.reports.iter().filter_map(|c| c.host.clone()).collect();
        let mut seals = WitnessedSeals::default();
        for w in witnessed {
            seals.add(w);
        }
        for (witness, theirs) in witnesses {
            let ours = theirs.of(&collectors);
            if ours.is_empty() {
                log.forks.push(Unattributed::NotWitnessed {
                    witness: witness.display().to_string(),
                    collectors: collectors.clone(),
                });
            }
            seals.extend(&ours);
        }
        let missing = seals.missing_from(&log.reports, &log.files)?;
        log.findings.extend(missing);
    }
    let (mut files, skipped) = verify_files::expand_or_empty(paths, log.is_some())?;
    let mut report = verify(&files, options)?;
    if let Some(log) = log {
        add_to_report(&mut report, &mut files, &skipped, log)?;
    }
    Ok((report, files, skipped))
}

/// For `logseal verify PATHS`: if the paths are a collector store (or
/// `force`: the single path is to be taken as one), reads its checkpoint log
/// and sets the checkpoints the store's chains are checked against; give the
/// result to [`add_to_report`] after the verification.
pub fn prepare(
    paths: &[PathBuf],
    options: &mut Options,
    force: bool,
) -> Result<Option<(PathBuf, StoreLog)>, InputError> {
    let root = match paths {
        [p] if force || verify_files::is_store(p) => p,
        _ => return Ok(None),
    };
    let log = read(root, options)?;
    options.checkpoints = log.checkpoints.clone();
    Ok(Some((root.clone(), log)))
}

/// The collector store a path lies inside, if it does (verifying part of a
/// store does not check it against its checkpoints).
pub fn inside_store(path: &Path) -> Option<&Path> {
    path.ancestors().skip(1).find(|a| verify_files::is_store(a))
}

/// The checkpoint log's directory of segments in a store.
pub fn log_dir(store: &Path) -> PathBuf {
    store.join(crate::collector::checkpoints::DIR).join("log")
}

/// Verifies the checkpoint log of `store` and reads the checkpoints its
/// accepted seals cover, if it is believed.
pub fn read(store: &Path, options: &Options) -> Result<StoreLog, InputError> {
    let dir = log_dir(store);
    let missing = || StoreLog {
        files: Vec::new(),
        reports: Vec::new(),
        findings: vec![Unattributed::NoCheckpointLog],
        checkpoints: None,
        forks: Vec::new(),
        witnessed: WitnessedSeals::default(),
    };
    let is_dir = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return Ok(missing());
    }
    let (files, mut stray) = verify_files::expand_or_empty(std::slice::from_ref(&dir), true)?;
    // The log's directory holds its segments and nothing else: a state
    // file, a temporary file, a directory or a link there is stray too.
    stray.extend(not_segments(&dir)?);
    stray.sort_by(|a, b| a.path.cmp(&b.path));
    stray.dedup_by(|a, b| a.path == b.path);
    let mut alone = options.clone();
    alone.checkpoints = None;
    let report = verify_files::verify(&files, alone, |_, _| {})?;
    if report.chains.is_empty() {
        return Ok(missing());
    }
    let mut findings = report.unattributed;
    if let Some(u) = findings.first() {
        let what = crate::responder::report::describe_unattributed(u, &files);
        findings.push(not_believed(format!(
            "its verification found {} finding(s) outside its chains, e.g. {what}",
            findings.len()
        )));
    }
    if let Some(s) = stray.first() {
        findings.push(not_believed(format!(
            "it holds {} file(s) that are not its segments, e.g. {} ({})",
            stray.len(),
            s.path.display(),
            s.why.describe()
        )));
    }
    if let Some(c) = report
        .chains
        .iter()
        .find(|c| !matches!(c.verdict, Verdict::Intact | Verdict::Pending))
    {
        findings.push(not_believed(format!(
            "its chain {} is {}",
            c.chain,
            c.verdict.name()
        )));
    }
    if let Some(c) = report.chains.iter().find(|c| c.redacted > 0) {
        findings.push(not_believed(format!(
            "its chain {} has redacted records (seqs {:?}): a checkpoint log is never redacted",
            c.chain, c.redacted_seqs
        )));
    }
    let statements = if findings.is_empty() {
        let sealed: HashMap<String, u64> = report
            .chains
            .iter()
            .filter_map(|c| Some((c.chain.clone(), c.last_seal_seq?)))
            .collect();
        let limit = options
            .memory_limit
            .unwrap_or(crate::chain::verify::DEFAULT_MEMORY_LIMIT);
        match collect(&files, &sealed, limit)? {
            Ok(k) => k,
            Err(why) => {
                findings.push(not_believed(why));
                Statements::default()
            }
        }
    } else {
        Statements::default()
    };
    Ok(StoreLog {
        files,
        reports: report.chains,
        checkpoints: findings.is_empty().then_some(statements.checkpoints),
        findings,
        forks: statements.forks,
        witnessed: statements.witnessed,
    })
}

/// The entries of the log's directory that are not regular `*.seg` files.
fn not_segments(dir: &Path) -> Result<Vec<Skipped>, InputError> {
    let io = |source| InputError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let regular = e.file_type().map_err(io)?.is_file();
        if !regular || !e.file_name().to_string_lossy().ends_with(".seg") {
            out.push(Skipped {
                path: e.path(),
                why: SkipReason::NotSegment,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn not_believed(reason: String) -> Unattributed {
    Unattributed::CheckpointLogNotBelieved { reason }
}

/// Memory counted per checkpointed chain: its entry in the map, its host name
/// counted apart.
const ENTRY_COST: u64 = 160;

/// The statements of records covered by an accepted seal of their chain
/// (`sealed`: per chain of the log, hex, its last accepted seal):
/// checkpoints, forks, witnessed peer checkpoints. A sealed statement that
/// does not decode makes the whole log not believed (the inner error). What
/// is kept takes memory per chain named, per fork and per witnessed block:
/// past `limit` bytes, verification stops (exit 2), as for the verifier's
/// own state.
fn collect(
    files: &[PathBuf],
    sealed: &HashMap<String, u64>,
    limit: u64,
) -> Result<Result<Statements, String>, InputError> {
    enum Stop {
        NotBelieved(String),
        Memory(PathBuf, u64),
    }
    let mut st = Statements::default();
    let mut held = 0u64;
    let stop = verify_files::each_record(files, |payload, path, offset| {
        match take_statement(&mut st, payload, sealed) {
            Ok(cost) => {
                held += cost;
                match held > limit {
                    true => ControlFlow::Break(Stop::Memory(path.to_path_buf(), offset)),
                    false => ControlFlow::Continue(()),
                }
            }
            Err(NotBelieved(why)) => ControlFlow::Break(Stop::NotBelieved(why)),
        }
    })?;
    match stop {
        None => Ok(Ok(st)),
        Some(Stop::NotBelieved(why)) => Ok(Err(why)),
        Some(Stop::Memory(path, offset)) => Err(InputError::MemoryLimit {
            path,
            offset,
            limit: limit >> 20,
        }),
    }
}

/// Why a checkpoint log is not believed, found in one of its records.
struct NotBelieved(String);

/// Takes what one record of the log states into `st` (see [`collect`]): the
/// memory it took, or why the log is not believed.
fn take_statement(
    st: &mut Statements,
    payload: &[u8],
    sealed: &HashMap<String, u64>,
) -> Result<u64, NotBelieved> {
    // The log verified intact without redactions: every frame is a record.
    let Ok(rec) = crate::chain::Record::decode(payload) else {
        return Ok(0);
    };
    note_log(&mut st.checkpoints, rec.chain_id);
    let covered = sealed
        .get(&rec.chain_id.to_string())
        .is_some_and(|s| rec.seq <= *s);
    let payload = match &rec.body {
        Body::Event {
            source: Source::Checkpoint,
            payload,
            ..
        } => payload,
        // A checkpoint log holds its statements: a chain with other events
        // (a host's chain put in its place) is no log.
        Body::Event { source, .. } => {
            return Err(NotBelieved(format!(
                "its chain {} holds an event of source {} at seq {}: a checkpoint log holds its statements only",
                rec.chain_id,
                source.name(),
                rec.seq
            )))
        }
        _ => return Ok(0),
    };
    if !covered {
        return Ok(0);
    }
    let decoded = match payload {
        Payload::Raw(p) => checkpoint::decode_statement(p).map_err(|e| e.to_string()),
        Payload::Fields(_) => Err("it is not a raw payload".into()),
    };
    let statement = decoded.map_err(|e| {
        NotBelieved(format!(
            "the checkpoint at seq {} of chain {} does not decode: {e}",
            rec.seq, rec.chain_id
        ))
    })?;
    Ok(match statement {
        Statement::Checkpoint(entries) => {
            let (chains, bytes) = st.checkpoints.add(rec.seq, entries);
            chains * ENTRY_COST + bytes
        }
        Statement::Fork(f) => {
            let seen = (f.chain, f.epoch, f.stored.0, f.received.0);
            if !st.forks_seen.insert(seen) {
                return Ok(0); // the same fork recorded again
            }
            let cost = ENTRY_COST + f.host.len() as u64;
            st.forks.push(Unattributed::ForkRecorded {
                host: f.host,
                chain: f.chain.to_string(),
                epoch: f.epoch,
                key: crate::chain::hash::fingerprint(&f.key),
                stored_seq: f.stored.0,
                received_seq: f.received.0,
                checkpoint_seq: rec.seq,
            });
            cost
        }
        Statement::Witnessed(block) => {
            let w = Witness::parse_block(&block).map_err(|e| {
                NotBelieved(format!(
                    "the witnessed checkpoint at seq {} of chain {} is not one: {e}",
                    rec.seq, rec.chain_id
                ))
            })?;
            // Every one: a log restored from a copy and run on holds later
            // seals, not the ones witnessed before.
            st.witnessed.add(&w)
        }
    })
}

fn note_log(k: &mut Checkpoints, chain: ChainId) {
    if !k.logs.contains(&chain) {
        k.logs.push(chain);
    }
}

/// Adds what the checkpoint log says to the store's report: the log's own
/// verdicts (its files appended to `files`, its findings pointing at them),
/// a log missing or not believed, and where a missing chain was found in
/// quarantine.
pub fn add_to_report(
    report: &mut Report,
    files: &mut Vec<PathBuf>,
    skipped: &[Skipped],
    (_, log): (PathBuf, StoreLog),
) -> Result<(), InputError> {
    let base = files.len();
    let mut reports = log.reports;
    for f in reports.iter_mut().flat_map(|c| c.problems.iter_mut()) {
        if let Some(at) = &mut f.at {
            at.file += base;
        }
    }
    for mut u in log.findings {
        match &mut u {
            Unattributed::Frame { at, .. } => at.file += base,
            Unattributed::BadSegment { file, .. } => *file += base,
            _ => {}
        }
        report.unattributed.push(u);
    }
    report.unattributed.extend(log.forks);
    files.extend(log.files);
    report.checkpoint_log = reports;
    for u in &mut report.unattributed {
        if let Unattributed::MissingChain {
            chain, quarantined, ..
        } = u
        {
            *quarantined = skipped
                .iter()
                .filter(|s| s.why == SkipReason::Quarantined)
                .find(|s| s.path.to_string_lossy().contains(chain.as_str()))
                .map(|s| s.path.display().to_string());
        }
    }
    Ok(())
}
