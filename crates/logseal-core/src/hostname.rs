//! The one form of a host name: what a Genesis names, what a certificate is
//! checked against, what an enrolled-hosts line and a store directory say.
//! DNS syntax in lower case, without a trailing dot — so that `WEB-02` and
//! `web-02.` cannot stand beside `web-02` as other hosts.

/// Longest host name.
pub const MAX_LEN: usize = 253;

/// Checks that `name` is a host name in its canonical form: labels of 1 to 63
/// characters `a-z`, `0-9` and `-` (not first or last), separated by dots,
/// at most 253 characters, no trailing dot.
pub fn check(name: &str) -> Result<(), String> {
    // Names come from peers too: messages show a bounded part of them.
    let name_shown = shown(name);
    if name.is_empty() || name.len() > MAX_LEN {
        return Err(format!(
            "host name {name_shown}: must be 1 to {MAX_LEN} characters"
        ));
    }
    if name != canonical(name) {
        return Err(format!(
            "host name {name_shown} is not in its canonical form {} (lower case, no trailing dot)",
            shown(&canonical(name))
        ));
    }
    let ok = name.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host name {name_shown}: labels of a-z, 0-9 and '-' (not first or last), 1 to 63 characters, separated by dots"
        ))
    }
}

/// A name as messages show it: quoted and escaped, at most 64 characters.
fn shown(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((i, _)) => format!("{:?}… ({} bytes)", &name[..i], name.len()),
        None => format!("{name:?}"),
    }
}

/// The canonical form of a name an operator or the system gave: ASCII lower
/// case, without one trailing dot. (It may still fail [`check`].)
pub fn canonical(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_form_per_host() {
        assert!(check("web-02").is_ok());
        assert!(check("web-02.example.org").is_ok());
        assert!(check("10").is_ok());
        for bad in [
            "WEB-02", "web-02.", "Web-02", "", "-web", "web-", "we_b", "a..b", ".a", "web 02",
            "wéb",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&"a".repeat(64)).is_err());
        assert!(check(&["a"; 127].join(".")).is_ok()); // 253 characters
        assert!(check(&["a"; 128].join(".")).is_err());
        assert_eq!(canonical("WEB-02."), "web-02");
        assert!(check(&canonical("WEB-02.")).is_ok());
    }
}
