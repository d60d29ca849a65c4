//! The one form of a host name: what a Genesis names, what a certificate is
//! checked against, what an enrolled-hosts line and a store directory say.
//! DNS syntax in lower case, without a trailing dot — so that `WEB-02` and
//! `web-02.` cannot stand beside `web-02` as other hosts.

/// Longest host name.
pub const MAX_LEN: usize = 253;

/// Checks that `name` is a host name in its canonical form: labels of 1 to 63
/// characters `a-z`, `0-9` and `-` (not first or last), separated by dots,
/// at most 253 characters, no trailing dot.
pub fn check(name: &str) -> Result<(), HostNameError> {
    // Names come from peers too: messages show a bounded part of them.
    if name.is_empty() || name.len() > MAX_LEN {
        return Err(HostNameError::Length(shown(name)));
    }
    if name != canonical(name) {
        return Err(HostNameError::NotCanonical {
            name: shown(name),
            canonical: shown(&canonical(name)),
        });
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
        Err(HostNameError::Labels(shown(name)))
    }
}

/// Why a name is not a host name in its canonical form; each shows the name
/// (quoted, escaped, at most 64 characters of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostNameError {
    /// Empty or too long.
    #[error("host name {0}: must be 1 to {MAX_LEN} characters")]
    Length(String),
    /// Upper case or a trailing dot.
    #[error(
        "host name {name} is not in its canonical form {canonical} (lower case, no trailing dot)"
    )]
    NotCanonical {
        /// The name.
        name: String,
        /// Its canonical form.
        canonical: String,
    },
    /// A label that is not DNS syntax.
    #[error(
        "host name {0}: labels of a-z, 0-9 and '-' (not first or last), 1 to 63 characters, \
         separated by dots"
    )]
    Labels(String),
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
