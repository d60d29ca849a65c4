//! `--check-config` of the agent and the collector: every file a start would
//! read is opened and parsed now, and every problem is reported at once (as
//! `rsyslogd -N1` does), each naming its key, its file and the cause once.
//!
//! Run as root, a file root can read may still be unreadable for the service
//! user the units run as ([`SERVICE_USER`]): that is checked too, from the
//! file's and its directories' owners and modes.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The user the packaged units run the agent and the collector as.
pub const SERVICE_USER: &str = "logseal";

/// A user's identity, from `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone)]
pub struct User {
    /// Its name.
    pub name: String,
    uid: u32,
    gids: Vec<u32>,
}

/// Largest passwd or group file read.
const MAX_DB: u64 = 16 << 20;

impl User {
    /// Looks `name` up in the system's user and group files; `None` if there is
    /// no such user (the package is not installed).
    pub fn lookup(name: &str) -> Option<User> {
        let passwd =
            crate::storage::fsutil::read_bounded_text(Path::new("/etc/passwd"), MAX_DB).ok()?;
        let (uid, gid) = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })?;
        let mut gids = vec![gid];
        if let Ok(group) =
            crate::storage::fsutil::read_bounded_text(Path::new("/etc/group"), MAX_DB)
        {
            for l in group.lines() {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                    if let Ok(g) = f[2].parse() {
                        gids.push(g);
                    }
                }
            }
        }
        Some(User {
            name: name.to_string(),
            uid,
            gids,
        })
    }

    /// Whether this user may do `want` (a mode's `r`, `w` or `x` bit: 4, 2, 1)
    /// on a file with these metadata, by owner, group and mode (ACLs aside).
    fn may(&self, m: &std::fs::Metadata, want: u32) -> bool {
        let mode = m.mode();
        let bits = if m.uid() == self.uid {
            mode >> 6
        } else if self.gids.contains(&m.gid()) {
            mode >> 3
        } else {
            mode
        };
        bits & want == want
    }

    /// Why this user could not read `path`, if it could not: a directory on
    /// the way it cannot enter, or the file it cannot read.
    pub fn cannot_read(&self, path: &Path) -> Option<String> {
        if self.uid == 0 {
            return None;
        }
        let abs = std::path::absolute(path).ok()?;
        // The directories on the way to the name, and to what a symlink names
        // (a certificate linked into a directory only root may enter).
        let real = std::fs::canonicalize(path).ok()?;
        let dirs = abs.ancestors().skip(1).chain(real.ancestors().skip(1));
        for dir in dirs {
            let m = std::fs::metadata(dir).ok()?;
            if !self.may(&m, 1) {
                return Some(format!(
                    "user {} cannot enter {} (mode {:o}, owner {}:{})",
                    self.name,
                    dir.display(),
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid()
                ));
            }
        }
        let m = std::fs::metadata(&abs).ok()?;
        (!self.may(&m, 4)).then(|| {
            format!(
                "user {} cannot read it (mode {:o}, owner {}:{})",
                self.name,
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            )
        })
    }
}

/// The user to check files for: the service user, when run as root and the
/// user exists.
pub fn service_user() -> Option<User> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    User::lookup(SERVICE_USER)
}

/// Problems of one file a start reads: it must be a regular file this process
/// can open and, when `user` is given, that user can read.
pub fn check_file(key: &str, path: &Path, user: Option<&User>, errors: &mut Vec<String>) -> bool {
    if let Err(e) = crate::storage::fsutil::open_regular(path) {
        errors.push(format!("{key} = {:?}: {e}", path.display()));
        return false;
    }
    if let Some(why) = user.and_then(|u| u.cannot_read(path)) {
        errors.push(format!("{key} = {:?}: {why}", path.display()));
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a fixture, not state
    use super::*;

    #[test]
    fn modes_decide_by_owner_then_group_then_others() {
        let d = std::env::temp_dir().join(format!("logseal-access-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("key.pem");
        std::fs::write(&f, "x").unwrap();
        let m = std::fs::metadata(&f).unwrap();
        let someone = User {
            name: "someone".into(),
            uid: m.uid().wrapping_add(12345),
            gids: vec![m.gid().wrapping_add(12345)],
        };
        let member = User {
            name: "member".into(),
            uid: m.uid().wrapping_add(12345),
            gids: vec![m.gid()],
        };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(someone.cannot_read(&f).unwrap().contains("cannot read it"));
        assert!(member.cannot_read(&f).is_none());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(someone.cannot_read(&f).is_none());
        // A symlink in an open directory to a file in a closed one.
        let open = d.with_extension("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = open.join("cert.pem");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(someone.cannot_read(&link).is_none());
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(someone.cannot_read(&f).unwrap().contains("cannot enter"));
        assert!(someone.cannot_read(&link).unwrap().contains("cannot enter"));
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::remove_dir_all(&open).unwrap();
    }
}
