//! `logseal verify`: the verdict on segment files, a spool or a store.

use crate::chain::trust::TrustAnchors;
use crate::chain::verify::{Live, Options, ReceiptOutcome, Receipted, Report};
use crate::responder::checkpoints::{CheckpointTie, KeyTie};
use crate::responder::witness::Witness;
use crate::responder::{checkpoints, report, verify_files};
use anyhow::{bail, Context};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The options of `logseal verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Segment files or directories (searched recursively), or a JetStream
    /// store as a nats:// URL (its form: `logseal store export --help`),
    /// exported to a temporary directory first.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// A trusted genesis key bound to its host, `HOST=KEY` (KEY: 64 hex
    /// digits, as `logseal agent --print-genesis` prints); repeatable.
    #[arg(long = "trust-key", value_name = "HOST=KEY")]
    pub trust_key: Vec<String>,
    /// File of trust anchors, `HOST KEY` per line (# comments): the lines
    /// `logseal agent --print-genesis` prints, the collector's enrolled file.
    #[arg(long = "trust-file", value_name = "F")]
    pub trust_file: Option<PathBuf>,
    /// The input is live (a running agent's spool or collector's store):
    /// records after the newest seal are pending, not a problem, while that
    /// seal is younger than --max-pending-age.
    #[arg(long)]
    pub live: bool,
    /// With --live: the oldest the newest seal may be for its tail to be
    /// pending (default 3 heartbeats, 180s).
    #[arg(long, value_name = "DURATION", value_parser = crate::util::units::parse_duration, requires = "live")]
    pub max_pending_age: Option<Duration>,
    /// With --live: judge the tail's age as of this time (ns since the Unix
    /// epoch) instead of the clock (for tests and re-examinations).
    #[arg(long, value_name = "NS", requires = "live", hide = true)]
    pub now_ns: Option<i64>,
    /// The most memory the verification state may take (default 512MiB;
    /// 64MiB to 1TiB). An input that needs more (very many chains or
    /// seals) is refused with exit 2, never judged in part.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub max_memory: Option<u64>,
    /// A store written before collectors kept checkpoints: do not require
    /// its checkpoint log (a chain cut, rewritten or deleted then goes
    /// unseen, and stderr says so).
    #[arg(long, conflicts_with = "store")]
    pub no_checkpoints: bool,
    /// The path is a collector store, whatever it still holds: its checkpoint
    /// log is required (a store given alone is otherwise recognised by its
    /// hosts/, checkpoints/, quarantine/ or the files a collector writes
    /// there).
    #[arg(long)]
    pub store: bool,
    /// A checkpoint kept outside the store (the block `logseal checkpoint
    /// --store` printed): the store's checkpoint log must still hold that
    /// seal, else it was cut or rewritten since. Repeatable; needs a store.
    #[arg(
        long = "checkpoint",
        value_name = "FILE",
        conflicts_with = "no_checkpoints"
    )]
    pub checkpoints: Vec<PathBuf>,
    /// The store of a collector that witnesses this store's collector (its
    /// `[witness]` peer): every checkpoint of this store's collector that
    /// its checkpoint log recorded must still be in this store's log (a log
    /// cut back or replaced fails the run). Its log must be believed and
    /// pinned by --trust-file. Repeatable; needs a store.
    #[arg(long, value_name = "STORE", conflicts_with = "no_checkpoints")]
    pub witnessed_by: Vec<PathBuf>,
    /// A collector's receipt (an agent's STATE/receipts/<chain>-<log>.receipt, or
    /// a bare receipt): the chain it names must hold the record it names,
    /// with the head it names; a fork or a cut fails the run, and so does a
    /// receipt that cannot be compared (exit 1). Its signature is checked
    /// under the key it names; that key is the collector's only if its
    /// checkpoint log's key chain names it (docs/FORMAT.md §7.2).
    #[arg(long, value_name = "FILE")]
    pub receipt: Option<PathBuf>,
    /// The store of the collector that signed the receipt (or a copy of its
    /// checkpoints/ directory beside an empty hosts/): its checkpoint log,
    /// pinned by --trust-file like any chain, must name the receipt's key.
    /// Not needed when PATH is that store. Without --receipt, PATH (a spool,
    /// or a chain's files) is checked against the collector's latest
    /// checkpoint of its chain instead, as against a receipt: a fork or a cut
    /// fails the run, and so does a checkpoint that cannot be compared.
    #[arg(long, value_name = "STORE")]
    pub collector: Option<PathBuf>,
}

/// What the input is checked against: a receipt (`--receipt`), or the
/// collector's latest checkpoint of one of its chains (`--collector`
/// alone), taken as its receipt (docs/FORMAT.md §7.2).
struct Against {
    /// What the input must hold, if it can judge it.
    receipted: Option<Receipted>,
    /// Why it cannot (the run then fails as not proven).
    untied: Option<String>,
    /// For the JSON report (`receipt_of`).
    json: serde_json::Value,
    /// For the text report.
    line: String,
}

/// `--receipt` (its signature checked, and whether its collector's
/// checkpoint log — `--collector`, or PATH when it is a store — names its
/// key), or `--collector` alone.
fn against(
    a: &VerifyArgs,
    anchors: &crate::chain::trust::TrustAnchors,
) -> anyhow::Result<Option<Against>> {
    let o = Options {
        anchors: anchors.clone(),
        memory_limit: a.max_memory,
        ..Options::default()
    };
    let is_store = |p: &PathBuf| a.store || verify_files::is_store(p);
    let Some(f) = &a.receipt else {
        let Some(store) = &a.collector else {
            return Ok(None);
        };
        if let [p] = a.paths.as_slice() {
            if is_store(p) {
                bail!(
                    "--collector without --receipt checks a spool or a chain's files against \
                     the collector's latest checkpoint; {} is a store, checked against its own",
                    report::safe_path(p)
                );
            }
        }
        let (files, _) = verify_files::expand_or_empty(&a.paths, false)?;
        return Ok(Some(match checkpoints::checkpoint_as_receipt(store, &files, &o)? {
            CheckpointTie::Tied(fc) => Against {
                json: serde_json::json!({
                    "from": "checkpoint",
                    "collector": fc.collector,
                    "checkpoint_seq": fc.checkpoint_seq,
                    "host": fc.receipted.host,
                    "chain": fc.receipted.chain.to_string(),
                    "seq": fc.receipted.seq,
                    "head": crate::chain::hex::encode(&fc.receipted.head),
                }),
                line: format!(
                    "checkpoint of collector {:?} (seq {} of its checkpoint log) for chain {} of host {:?}: held up to seq {}",
                    fc.collector,
                    fc.checkpoint_seq,
                    fc.receipted.chain,
                    fc.receipted.host,
                    fc.receipted.seq
                ),
                receipted: Some(fc.receipted),
                untied: None,
            },
            CheckpointTie::NotTied(why) => Against {
                receipted: None,
                untied: Some(format!("the collector's checkpoints cannot judge it: {why}")),
                json: serde_json::json!({ "collector_store": store.display().to_string() }),
                line: format!("checkpoints of the collector store {}", report::safe_path(store)),
            },
        }));
    };
    let r = crate::transport::receipts::read_file(f)?.receipt;
    let store = a.collector.clone().or_else(|| match a.paths.as_slice() {
        [p] if is_store(p) => Some(p.clone()),
        _ => None,
    });
    let tie = match store {
        Some(s) => checkpoints::receipt_key(&s, &r, &o)?,
        None => {
            KeyTie::NotTied("no collector store to find its key in (give --collector STORE)".into())
        }
    };
    let line = format!(
        "receipt of collector {:?} (its log {}, epoch {}, key {}) for chain {} of host {:?}: held up to seq {}",
        r.collector,
        r.log_chain,
        r.log_epoch,
        crate::chain::hash::fingerprint(&r.log_key),
        r.chain,
        r.host,
        r.seq
    );
    Ok(Some(Against {
        // A receipt not tied to its collector judges nothing.
        receipted: (tie == KeyTie::Tied).then(|| Receipted {
            host: r.host.clone(),
            chain: r.chain,
            seq: r.seq,
            head: r.head,
        }),
        untied: match tie {
            KeyTie::NotTied(why) => Some(format!("its key is not tied to the collector: {why}")),
            KeyTie::Tied => None,
        },
        json: report::receipt_json(&r),
        line,
    }))
}

/// `--max-memory`: a size from 64 MiB to 1 TiB.
fn parse_memory(s: &str) -> Result<u64, String> {
    let n = crate::util::units::parse_size(s).map_err(|e| e.to_string())?;
    if !(64 << 20..=1 << 40).contains(&n) {
        return Err(format!("{s}: between 64MiB and 1TiB"));
    }
    Ok(n)
}

/// Runs `logseal verify`: exit 0 intact, 1 not (the report says why).
pub fn run(mut a: VerifyArgs) -> anyhow::Result<ExitCode> {
    // A nats:// store is exported to a temporary directory and judged there;
    // what could not be exported fails the run.
    let (paths, _exported, incomplete) = crate::cmd::store::materialize(&a.paths)?;
    a.paths = paths;
    if incomplete {
        let code = run_paths(a)?;
        return Ok(if code == ExitCode::SUCCESS {
            ExitCode::from(1)
        } else {
            code
        });
    }
    run_paths(a)
}

/// Runs `logseal verify` on files and directories.
fn run_paths(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let live = a.live.then(|| Live {
        now_ns: a.now_ns.unwrap_or_else(crate::util::timefmt::now_ns),
        max_age_ns: i64::try_from(
            a.max_pending_age
                .unwrap_or(Duration::from_secs(180))
                .as_nanos(),
        )
        .unwrap_or(i64::MAX),
    });
    let anchors = trust_anchors(&a.trust_key, a.trust_file.as_ref())?;
    let against = against(&a, &anchors)?;
    let options = Options {
        anchors,
        live,
        memory_limit: a.max_memory,
        checkpoints: None,
        receipt: against.as_ref().and_then(|x| x.receipted.clone()),
    };
    if a.store && a.paths.len() != 1 {
        bail!("--store takes exactly one path, the store's directory");
    }
    let witnessed = a
        .checkpoints
        .iter()
        .map(|f| Witness::read(f))
        .collect::<Result<Vec<_>, _>>()?;
    if !(witnessed.is_empty() && a.witnessed_by.is_empty())
        && !(a.paths.len() == 1 && (a.store || verify_files::is_store(&a.paths[0])))
    {
        bail!("--checkpoint and --witnessed-by need one path, a collector store (or --store)");
    }
    let witnesses = a
        .witnessed_by
        .iter()
        .map(|w| Ok((w.clone(), checkpoints::witnessed_by(w, &options)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for store in a
        .paths
        .iter()
        .filter_map(|p| unchecked_store(p, a.no_checkpoints || a.paths.len() > 1))
    {
        eprintln!(
            "logseal verify: the store {} is not checked against its checkpoint log \
             (verify the store's directory alone, without --no-checkpoints): a chain cut \
             after a seal, rewritten or deleted is not seen",
            report::safe_path(store)
        );
    }
    // A store: its checkpoint log first, then its chains against it.
    let (mut report, files, skipped) = checkpoints::verify_paths(
        &a.paths,
        options,
        (a.store, !a.no_checkpoints),
        (&witnessed, &witnesses),
        |f, o| {
            if rustix::termios::isatty(std::io::stderr()) {
                verify_with_progress(f, o)
            } else {
                verify_files::verify(f, o, |_, _| {})
            }
        },
    )?;
    if let Some(why) = against.as_ref().and_then(|x| x.untied.clone()) {
        report.receipt = Some(ReceiptOutcome::Unchecked { reason: why });
    }
    let code = if report.intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    // A reader that stops early (`verify … | head`) does not change the verdict.
    match write_verify_output(&report, &files, &skipped, a.json, against.as_ref()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(code),
    }
}

/// The store `path` is, or lies inside, that will not be checked against
/// its checkpoint log (`unchecked`: nor a store given: with
/// --no-checkpoints, or beside other paths).
fn unchecked_store(path: &std::path::Path, unchecked: bool) -> Option<&std::path::Path> {
    if unchecked && verify_files::is_store(path) {
        Some(path)
    } else {
        checkpoints::inside_store(path)
    }
}

/// Verifies with a progress line on the terminal (stderr), every 200 ms.
fn verify_with_progress(
    files: &[PathBuf],
    options: Options,
) -> Result<Report, verify_files::InputError> {
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .collect();
    let total: u64 = sizes.iter().sum::<u64>().max(1);
    let mut last = Instant::now();
    let r = verify_files::verify(files, options, |i, pos| {
        if last.elapsed() >= Duration::from_millis(200) {
            last = Instant::now();
            let done: u64 = sizes[..i].iter().sum::<u64>() + pos;
            eprint!(
                "\rverifying {}/{} files, {} of {} MB ({}%)   ",
                i + 1,
                files.len(),
                done >> 20,
                total >> 20,
                done.saturating_mul(100) / total
            );
        }
    });
    eprint!("\r{:70}\r", "");
    r
}

/// Reads the trust anchors of `--trust-key` and `--trust-file`.
pub fn trust_anchors(
    trust_key: &[String],
    trust_file: Option<&PathBuf>,
) -> anyhow::Result<TrustAnchors> {
    use crate::chain::trust::MAX_TRUST_FILE;
    let mut anchors = TrustAnchors::none();
    for k in trust_key {
        anchors
            .add_arg(k)
            .map_err(|e| anyhow::anyhow!("--trust-key: {e} (expected HOST=KEY)"))?;
    }
    if let Some(f) = trust_file {
        let text = crate::storage::fsutil::read_bounded_text(f, MAX_TRUST_FILE)
            .with_context(|| format!("reading trust file {}", f.display()))?;
        let before = anchors.len();
        anchors
            .extend_from(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        if anchors.len() == before {
            bail!("trust file {} holds no anchors", f.display());
        }
    }
    Ok(anchors)
}

fn write_verify_output(
    report: &Report,
    files: &[PathBuf],
    skipped: &[verify_files::Skipped],
    json: bool,
    against: Option<&Against>,
) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        let mut doc = report::verify_json(report, files, skipped);
        doc.receipt_of = against.map(|x| x.json.clone());
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        for s in skipped {
            writeln!(
                out,
                "skipped {} ({})",
                report::safe_path(&s.path),
                s.why.describe()
            )?;
        }
        if let Some(x) = against {
            writeln!(out, "{}", x.line)?;
        }
        report::verify_text(&mut out, report, files)?;
    }
    out.flush()
}
