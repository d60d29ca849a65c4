//! Operator input: the agent's and the collector's config files (TOML with
//! sizes and durations in units), and journald cursors (the resume point).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = logseal::agent::config::AgentConfig::parse(&text, Path::new("fuzz.toml"));
    let _ = logseal::collector::config::CollectorConfig::parse(&text, Path::new("fuzz.toml"));
    for line in text.lines().take(64) {
        let _ = logseal::util::units::parse_size(line);
        let _ = logseal::util::units::parse_duration(line);
        let _ = logseal::ingest::journal::cursor::Cursor::parse(line);
        let _ = line.parse::<logseal::ingest::journal::config::JournalStart>();
    }
});
