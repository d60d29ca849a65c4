//! The shape of the source tree (README, "Layout"): the stages of the
//! pipeline depend on each other in one direction only, and the core (the
//! crate `crates/logseal-core`) depends on nothing that does I/O.
//!
//! Dependencies are read from the source: a `crate::M::` path (or `super::M`
//! between siblings) outside comments and outside `#[cfg(test)]` modules.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // tests: panics are failures; fixtures are not state files

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `p` (or `p` itself).
fn files(p: &Path) -> Vec<PathBuf> {
    if p.is_file() {
        return vec![p.to_path_buf()];
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(files(&e));
        } else if e.extension().is_some_and(|x| x == "rs") {
            out.push(e);
        }
    }
    out
}

/// The code of a file: without comment lines and the test module.
fn code(f: &Path) -> String {
    let text = std::fs::read_to_string(f).unwrap();
    let body = text.split("#[cfg(test)]").next().unwrap_or_default();
    body.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names of the modules in `dir` (folders and `.rs` files but `skip`).
fn modules(dir: &Path, skip: &[&str]) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let name = name.strip_suffix(".rs").unwrap_or(&name).to_string();
        if !skip.contains(&name.as_str())
            && (p.is_dir() || p.extension().is_some_and(|x| x == "rs"))
        {
            out.insert(name, p);
        }
    }
    out
}

/// Which of `mods` each one names through one of `prefixes` (`crate::`, `super::`).
fn graph(
    mods: &BTreeMap<String, PathBuf>,
    prefixes: &[String],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut g = BTreeMap::new();
    for (m, p) in mods {
        let mut deps: BTreeMap<String, String> = BTreeMap::new();
        for f in files(p) {
            let c = code(&f);
            for prefix in prefixes {
                for (at, _) in c.match_indices(prefix.as_str()) {
                    let rest = &c[at + prefix.len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                        .collect();
                    if name != *m && mods.contains_key(&name) {
                        deps.entry(name).or_insert_with(|| {
                            f.strip_prefix(src()).unwrap().display().to_string()
                        });
                    }
                }
            }
        }
        g.insert(m.clone(), deps);
    }
    g
}

/// The cycles of `g`, as the strongly connected components of two or more
/// modules, each edge inside with a file that makes it.
fn cycles(g: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<String> {
    // Reachability by repeated search: the graphs are small.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for d in g[&m].keys() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let mut out = Vec::new();
    for (a, deps) in g {
        for (b, file) in deps {
            if reach(b).contains(a) {
                out.push(format!("{a} -> {b} ({file}) and back"));
            }
        }
    }
    out
}

#[test]
fn the_stages_depend_on_each_other_in_one_direction() {
    let top = modules(&src(), &["lib", "main"]);
    assert!(top.len() >= 8, "{top:?}");
    let c = cycles(&graph(&top, &["crate::".to_string()]));
    assert!(
        c.is_empty(),
        "import cycles between top-level modules:\n{}",
        c.join("\n")
    );
    // Within each stage, between its modules.
    for (name, p) in &top {
        if !p.is_dir() {
            continue;
        }
        let subs = modules(p, &["mod"]);
        let prefixes = [format!("crate::{name}::"), "super::".to_string()];
        let c = cycles(&graph(&subs, &prefixes));
        assert!(
            c.is_empty(),
            "import cycles inside src/{name}/:\n{}",
            c.join("\n")
        );
    }
}

#[test]
fn the_core_depends_on_nothing_else_and_does_no_io() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/logseal-core");
    let forbidden = [
        "tokio",
        "std::fs",
        "std::net",
        "std::io::Read",
        "std::io::Write",
        "SystemTime",
        "Instant",
        "rustls",
        "systemd",
        "std::thread",
        "std::env",
        "logseal::",
    ];
    for f in files(&core.join("src")) {
        let c = code(&f);
        for io in forbidden {
            assert!(!c.contains(io), "{}: the core uses {io}", f.display());
        }
    }
    let lib = std::fs::read_to_string(core.join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("#![forbid(unsafe_code)]"),
        "the core forbids unsafe code"
    );
    // What the core's build pulls in, signing included, as cargo resolves it.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "logseal-core",
            "--features",
            "signing",
        ])
        .args(["-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("ring v"), "{tree}");
    for dep in ["tokio", "rustls", "systemd", "mio", "logseal v"] {
        let hit = tree.lines().find(|l| l.starts_with(dep));
        assert!(hit.is_none(), "logseal-core depends on {hit:?}:\n{tree}");
    }
}

/// The checks see a cycle when there is one (so that passing means something).
#[test]
fn a_cycle_is_seen() {
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    g.insert("a".into(), [("b".to_string(), "a.rs".to_string())].into());
    g.insert("b".into(), [("c".to_string(), "b.rs".to_string())].into());
    g.insert("c".into(), [("a".to_string(), "c.rs".to_string())].into());
    g.insert("d".into(), [("a".to_string(), "d.rs".to_string())].into());
    let c = cycles(&g);
    assert_eq!(c.len(), 3, "{c:?}");
    assert!(!c.iter().any(|e| e.starts_with("d ")));
}

/// The functions of `src/` and `crates/` (outside test modules) as (lines,
/// file, name): from the `fn` line to the brace that closes it at the same
/// indentation.
fn function_lengths() -> Vec<(usize, String, String)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for root in [repo.join("src"), repo.join("crates")] {
        for f in files(&root) {
            let text = std::fs::read_to_string(&f).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let mut i = 0;
            while i < lines.len() {
                let l = lines[i];
                let t = l.trim_start();
                let indent = &l[..l.len() - t.len()];
                let t = t
                    .trim_start_matches("pub ")
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("async ")
                    .trim_start_matches("const ");
                let named = t.strip_prefix("fn ").map(|r| {
                    r.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                });
                match named {
                    Some(name) if !l.trim_end().ends_with(';') && !l.trim_end().ends_with('}') => {
                        let close = format!("{indent}}}");
                        let end = (i + 1..lines.len())
                            .find(|&j| lines[j].trim_end() == close)
                            .unwrap_or(lines.len());
                        let rel = f.strip_prefix(repo).unwrap().display().to_string();
                        out.push((end - i + 1, rel, name));
                        i = end;
                    }
                    _ => {}
                }
                i += 1;
            }
        }
    }
    out.sort();
    out.reverse();
    out
}

/// A function an auditor can read in one sitting: none over 120 lines.
#[test]
fn no_function_is_longer_than_120_lines() {
    let all = function_lengths();
    assert!(all.len() > 500, "{} functions found", all.len());
    let long: Vec<_> = all.iter().filter(|(n, _, _)| *n >= 120).collect();
    assert!(long.is_empty(), "functions of 120 lines or more: {long:?}");
    // The measure sees a long function when there is one.
    let agent = all
        .iter()
        .find(|(_, f, n)| n == "run" && f.ends_with("agent/mod.rs"));
    assert!(agent.is_some_and(|(n, _, _)| *n > 50), "{agent:?}");
}

/// `anyhow` only where a command reports to its user (`src/cmd/`,
/// `src/main.rs`); the library modules return typed errors.
#[test]
fn anyhow_only_in_the_commands() {
    let mut found = Vec::new();
    for f in files(&src()) {
        let rel = f.strip_prefix(src()).unwrap().display().to_string();
        if rel.starts_with("cmd/") || rel == "main.rs" {
            continue;
        }
        if code(&f).contains("anyhow") {
            found.push(rel);
        }
    }
    assert!(found.is_empty(), "anyhow used outside src/cmd/: {found:?}");
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/logseal-core/src");
    assert!(files(&core).iter().all(|f| !code(f).contains("anyhow")));
}

/// The `Result<_, String>` return types in `code`.
fn string_errors(code: &str) -> Vec<String> {
    let text: String = code.split_whitespace().collect();
    let mut found = Vec::new();
    for (i, _) in text.match_indices("->Result<") {
        // The error type is what follows the last top-level comma.
        let rest = &text[i + "->Result<".len()..];
        let (mut depth, mut comma, mut end) = (0i32, None, rest.len());
        for (j, c) in rest.char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' | ')' | ']' if depth == 0 => {
                    end = j;
                    break;
                }
                '>' | ')' | ']' => depth -= 1,
                ',' if depth == 0 => comma = Some(j),
                _ => {}
            }
        }
        if comma.is_some_and(|c| &rest[c + 1..end] == "String") {
            found.push(format!("Result<{}>", &rest[..end]));
        }
    }
    found
}

/// Errors are typed outside the commands: no function of the library or the
/// core returns `Result<_, String>` (an error a caller can only print).
#[test]
fn no_library_function_returns_a_string_error() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/logseal-core/src");
    let mut found = Vec::new();
    for (root, f) in files(&src())
        .into_iter()
        .map(|f| (src(), f))
        .chain(files(&core).into_iter().map(|f| (core.clone(), f)))
    {
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        if root == src() && (rel.starts_with("cmd/") || rel == "main.rs") {
            continue;
        }
        for e in string_errors(&code(&f)) {
            found.push(format!("{rel}: {e}"));
        }
    }
    assert!(
        found.is_empty(),
        "functions returning Result<_, String> outside src/cmd/: {found:?}"
    );
    // The scan sees one, and not a typed error or a String success.
    let probe = "fn a(x: u8) -> Result<Vec<(u8, String)>, String> {}\n\
                 fn b() -> Result<String, io::Error> {}\n\
                 fn c() -> Result<(), Box<dyn Error>> {}";
    assert_eq!(string_errors(probe), ["Result<Vec<(u8,String)>,String>"]);
}
