//! `logseal man`: the man pages, from the command line's definition and the
//! hand-written sections below.

use anyhow::Context;

/// Writes `logseal.1` and `logseal-CMD.1` for every visible command (and
/// `logseal-pki-CMD.1` for the pki commands): clap's NAME, SYNOPSIS (as typed:
/// `logseal agent`), DESCRIPTION and OPTIONS, then the FILES, SIGNALS, EXIT
/// STATUS, EXAMPLES and SEE ALSO sections of [`man_extra`].
pub fn write(cli: clap::Command, out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut cmd = cli.name("logseal").disable_help_subcommand(true);
    cmd.build();
    let pages: Vec<(String, String)> =
        std::iter::once(("logseal".to_string(), "logseal".to_string()))
            .chain(
                cmd.get_subcommands()
                    .filter(|c| !c.is_hide_set())
                    .flat_map(|sub| {
                        let n = sub.get_name().to_string();
                        std::iter::once((format!("logseal-{n}"), format!("logseal {n}"))).chain(
                            sub.get_subcommands()
                                .filter(|c| !c.is_hide_set() && c.get_name() != "help")
                                .map(move |ss| {
                                    (
                                        format!("logseal-{n}-{}", ss.get_name()),
                                        format!("logseal {n} {}", ss.get_name()),
                                    )
                                }),
                        )
                    }),
            )
            .collect();
    let all: Vec<&str> = pages.iter().map(|(f, _)| f.as_str()).collect();
    for (file, typed) in &pages {
        let mut words = typed.split(' ').skip(1);
        let mut c = cmd.clone();
        for w in words.by_ref() {
            let next = c
                .find_subcommand(w)
                .with_context(|| format!("no subcommand {w}"))?
                .clone()
                .disable_help_subcommand(true);
            c = next;
        }
        let c = c.name(file.clone()).bin_name(typed.clone());
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .date("2026-11-30")
            .source(concat!("logseal ", env!("CARGO_PKG_VERSION")))
            .manual("logseal manual")
            .render(&mut buf)?;
        // clap lists subcommands as NAME-SUB(1); pages exist for each.
        buf.extend_from_slice(man_extra(file, &all).as_bytes());
        let path = out.join(format!("{file}.1"));
        crate::storage::fsutil::write_atomic(&path, &buf, "man")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The hand-written sections of a man page (roff), by page.
fn man_extra(page: &str, all: &[&str]) -> String {
    let mut s = String::new();
    let files_agent = ".TP\n/etc/logseal/agent.toml\nThe agent's configuration (every key, commented, with its default).\n\
        .TP\n/var/lib/logseal/agent/\nIts state directory: the signer state, the Genesis copy, the spool, \\fBstatus.json\\fR, the lock.\n\
        .TP\n/etc/logseal/pki/\nCertificates and keys named in [ship] and TLS inputs.\n\
        .TP\n/run/logseal/log.sock\nThe unix socket input of the packaged configuration.\n";
    let files_collector = ".TP\n/etc/logseal/collector.toml\nThe collector's configuration.\n\
        .TP\n/var/lib/logseal/store/\nThe store: hosts/HOST/CHAIN/*.seg, checkpoints/ (the collector's own chain of checkpoints), quarantine/, alerts.jsonl, \\fBstatus.json\\fR, crl-floor.json, the lock.\n\
        .TP\n/etc/logseal/pki/\nca.crt, collector.crt, collector.key, crl.pem.\n";
    match page {
        "logseal" => {
            s += ".SH FILES\n";
            s += files_agent;
            s += files_collector;
            s += ".SH EXIT STATUS\n\
                 0: success (\\fBverify\\fR: intact or pending). 1: \\fBverify\\fR found a chain \
                 broken or unanchored, or \\fBinspect\\fR could not read a file. 2: a usage, \
                 configuration or I/O error, or a start that failed (the chain untouched). \
                 \\fBstatus\\fR exits as a Nagios plugin (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal quickstart\n\
                 logseal verify /var/lib/logseal/store\n\
                 logseal status --config /etc/logseal/agent.toml\n\
                 logseal pki issue --dir ./pki --name web-01 --role agent\n.fi\n";
        }
        "logseal-agent" => {
            s += ".SH FILES\n";
            s += files_agent;
            s += ".SH SIGNALS\n\
                 .TP\nSIGTERM, SIGINT\nStop the inputs, chain what arrived, write a \\fIshutdown\\fR \
                 record and a final seal, ship the last records (drain_timeout), exit 0.\n\
                 .TP\nSIGHUP\nLoad the certificates and keys of the TLS inputs and of [ship] again; \
                 other settings need a restart (the log names those that changed).\n";
            s += ".SH EXIT STATUS\n\
                 0 after a clean stop. 2 when the start fails (a port in use, a missing certificate, \
                 a bad journal, another agent on the state directory): the chain is left as it was; \
                 2 also after a failure while running (the chain sealed if it could be; the log says why).\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal agent --config /etc/logseal/agent.toml\n\
                 logseal agent --check-config /etc/logseal/agent.toml\n\
                 logseal agent --listen udp://127.0.0.1:5514 --listen tcp://127.0.0.1:5514 --state /tmp/st\n\
                 logseal agent --journal /var/log/journal --stop-at-journal-end --state /tmp/case\n\
                 logseal agent --print-genesis --config /etc/logseal/agent.toml\n.fi\n";
        }
        "logseal-collector" => {
            s += ".SH FILES\n";
            s += files_collector;
            s += ".SH SIGNALS\n\
                 .TP\nSIGTERM, SIGINT\nStop accepting, finish open sessions, save the tips, exit 0.\n\
                 .TP\nSIGHUP\nLoad the certificate, key, CA and CRL again (the CRL file is also \
                 looked at every second).\n";
            s += ".SH EXIT STATUS\n0 after a clean stop; 2 when the start fails (a bad or stale \
                 configuration, a CRL that does not check out, another collector on the store).\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal collector --config /etc/logseal/collector.toml\n\
                 logseal collector --check-config /etc/logseal/collector.toml\n\
                 logseal collector --print-genesis --config /etc/logseal/collector.toml\n.fi\n";
        }
        "logseal-verify" => {
            s += ".SH EXIT STATUS\n0: every chain intact (or pending, with --live). 1: a chain \
                 broken or unanchored; for a store, also a chain cut, rewritten or missing against \
                 the collector's checkpoints, or a checkpoint log missing or not believed. 2: a \
                 usage or I/O error, or more memory needed than --max-memory.\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal verify /var/lib/logseal/store\n\
                 logseal verify --json --trust-file enrolled case/\n.fi\n";
        }
        "logseal-status" => {
            s += ".SH FILES\n.TP\nSTATE/status.json, STORE/status.json\nWritten by the agent \
                 (every 5 s) and the collector (every status_interval), and at their stop.\n";
            s += ".SH EXIT STATUS\n0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, as a Nagios plugin.\n";
            s += ".SH EXAMPLES\n.nf\n\
                 logseal status --config /etc/logseal/agent.toml\n\
                 logseal status --store /var/lib/logseal/store --json\n.fi\n";
        }
        _ => {}
    }
    let others: Vec<String> = all
        .iter()
        .filter(|p| **p != page)
        .map(|p| format!("\\fB{p}\\fR(1)"))
        .collect();
    s += ".SH SEE ALSO\n";
    s += &others.join(", ");
    s += "\n";
    s
}
