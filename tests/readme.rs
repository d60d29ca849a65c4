//! The README's shell blocks, as written: each ```sh block carries a marker,
//! `<!-- readme-test: run -->` (run here by bash, from a scratch directory
//! where `target/` is the repository's and `logseal` is on the PATH) or
//! `<!-- readme-test: run with journald -->` (the same, with the system
//! journald running: started for it where none runs),
//! `<!-- readme-test: package N -->` (an install block: `packaging/check.sh`
//! runs them in the order of N on the machine, as root, with the package it
//! built: `packaging/readme-install.sh`), `<!-- readme-test: bench -->`
//! (the benchmark commands: `.ci/run` runs them at small sizes) or
//! `<!-- readme-test: skip: WHY -->` (saying where else it is exercised). A
//! block without a marker fails: a new block must decide.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// (line of the fence, marker, block text) of every ```sh block.
fn blocks() -> Vec<(usize, String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("```sh") {
            let marker = i
                .checked_sub(1)
                .and_then(|p| lines[p].trim().strip_prefix("<!-- readme-test: "))
                .and_then(|m| m.strip_suffix(" -->"))
                .unwrap_or("")
                .to_string();
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && !lines[end].trim_start().starts_with("```") {
                end += 1;
            }
            out.push((i + 1, marker, lines[start..end].join("\n") + "\n"));
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn every_readme_shell_block_runs_as_written_or_says_why_not() {
    let all = blocks();
    assert!(all.len() >= 10, "{all:?}");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let release = repo.join("target/release");
    assert!(
        release.join("logseal").exists(),
        "build the release binary first"
    );
    let mut ran = 0;
    let mut packaged = 0;
    for (line, marker, text) in &all {
        if marker.starts_with("skip: ") && marker.len() > 12 {
            continue;
        }
        // The benchmark block: .ci/run runs it at small sizes.
        if marker == "bench" {
            let ci = std::fs::read_to_string(repo.join(".ci/run")).unwrap();
            assert!(
                ci.contains("/<!-- readme-test: bench -->/") && ci.contains("readme-bench.sh"),
                "README line {line}: a bench block, but .ci/run does not run it"
            );
            continue;
        }
        // The install blocks: run in order by packaging/readme-install.sh,
        // which packaging/check.sh calls after building the .deb.
        if marker
            .strip_prefix("package ")
            .is_some_and(|n| n.parse::<u32>().is_ok())
        {
            let check = std::fs::read_to_string(repo.join("packaging/check.sh")).unwrap();
            assert!(
                check.contains("bash packaging/readme-install.sh")
                    && repo.join("packaging/readme-install.sh").exists(),
                "README line {line}: a package block, but check.sh does not run them"
            );
            packaged += 1;
            continue;
        }
        // A block on the system journal: run with the system journald (the
        // running one, or one started for it), if the binary reads journals.
        let _journald = match marker.as_str() {
            "run with journald" if !cfg!(feature = "journald") => {
                eprintln!("README line {line}: skipped, built without the journald feature");
                continue;
            }
            "run with journald" => Some(common::journal::SystemJournald::ensure()),
            _ => None,
        };
        assert!(
            marker == "run" || _journald.is_some(),
            "README line {line}: a ```sh block needs `<!-- readme-test: run -->`, \
             `<!-- readme-test: run with journald -->` or `<!-- readme-test: skip: WHY -->` \
             on the line before it, not {marker:?}"
        );
        // What the block writes under /tmp is removed first: a second run
        // starts where a reader's first would.
        for word in text.split(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            if let Some(p) = word.strip_prefix("/tmp/") {
                let p = p.trim_end_matches([';', '&', ')']);
                if !p.is_empty() && !p.contains("..") {
                    let _ = std::fs::remove_dir_all(Path::new("/tmp").join(p));
                    let _ = std::fs::remove_file(Path::new("/tmp").join(p));
                }
            }
        }
        let d = TempDir::new("readme");
        std::os::unix::fs::symlink(repo.join("target"), d.path().join("target")).unwrap();
        let path = format!(
            "{}:{}",
            release.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // As a reader pastes it: no `set -e` (a block may show a failing
        // command's exit status), but nothing may be missing or refused.
        let o = Command::new("bash")
            .args(["-c", text])
            .current_dir(d.path())
            .env("PATH", path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        let refused = [
            "command not found",
            "No such file or directory",
            "logseal: error",
        ]
        .iter()
        .find(|w| stderr.contains(*w));
        assert!(
            o.status.success() && refused.is_none(),
            "README block at line {line} failed ({}):\n{text}\nstdout:\n{}\nstderr:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 3, "only {ran} blocks ran");
    assert!(packaged >= 5, "only {packaged} install blocks");
}

/// The README's Layout section names every folder and loose file of `src/`,
/// and nothing that is not there.
#[test]
fn the_layout_section_matches_the_tree() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let layout = readme
        .split("## Layout")
        .nth(1)
        .and_then(|s| s.split("```").nth(1))
        .expect("a Layout section with a code block");
    let mut named = std::collections::BTreeSet::new();
    for line in layout.lines() {
        if let Some(p) = line
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with("src/") || p.starts_with("crates/"))
        {
            named.insert(p.to_string());
        }
    }
    let mut present = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(repo.join("src")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if e.file_type().unwrap().is_dir() {
            present.insert(format!("src/{name}/"));
        } else if name != "lib.rs" {
            present.insert(format!("src/{name}"));
        }
    }
    for e in std::fs::read_dir(repo.join("crates")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        present.insert(format!("crates/{name}/"));
    }
    assert_eq!(named, present, "README Layout against src/ and crates/");
}
