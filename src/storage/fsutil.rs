//! The one way state files are written: temp file, fsync, rename, fsync the directory.
//!
//! Crash at any step leaves either the old file or the new one under the final
//! name, never a mix: before the rename only a `.NAME.tmp` exists beside the old
//! file (removed at the next open with [`remove_stale_temps`]); after the rename
//! the new file is complete because it was fsynced first.
//!
//! Files holding secrets are written with [`write_secret`]: mode 0600, and the
//! replaced file's blocks are overwritten with zeros through a descriptor opened
//! before the rename, so the erased key is not left in the old inode. (A crash
//! between the rename and that overwrite leaves the old bytes in free filesystem
//! blocks, outside any file; on copy-on-write or flash storage overwriting is best
//! effort. See README, "Forward security".)

use crate::storage::faults;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// fsyncs a directory, making a rename or create in it durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Atomically replaces `path` with `data` (mode 0644). `step` names the crash
/// points `STEP.temp-written` and `STEP.renamed`.
pub fn write_atomic(path: &Path, data: &[u8], step: &str) -> io::Result<()> {
    write_impl(path, data, 0o644, false, step)
}

/// Like [`write_atomic`] for a file holding secrets: mode 0600, and the replaced
/// file's content is overwritten with zeros after the rename.
pub fn write_secret(path: &Path, data: &[u8], step: &str) -> io::Result<()> {
    write_impl(path, data, 0o600, true, step)
}

fn write_impl(path: &Path, data: &[u8], mode: u32, scrub_old: bool, step: &str) -> io::Result<()> {
    let tmp = temp_path(path);
    let old = if scrub_old {
        open_to_scrub(path)?
    } else {
        None
    };
    {
        // A leftover temp file (a crash) is removed, and the new one made
        // with O_EXCL: whatever else sits at that path (a symbolic link, a
        // FIFO planted there) is unlinked, never written through or waited on.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            )
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    faults::point(&format!("{step}.temp-written"));
    #[allow(clippy::disallowed_methods)] // this is the one sanctioned rename
    std::fs::rename(&tmp, path)?;
    faults::point(&format!("{step}.renamed"));
    fsync_dir(parent(path))?;
    if let Some(f) = old {
        zero_fill(f)?;
    }
    Ok(())
}

/// The most of a file [`zero_fill`] overwrites: a secret of ours is far
/// smaller; a larger file in its place was not written by us.
const MAX_SCRUB: u64 = 16 << 20;

/// The file at `path` opened for writing, to be scrubbed; `None` if there is
/// none, or if it is not a regular file of ours to scrub: a symbolic link
/// (not followed), a FIFO (never waited on), a device or a directory is
/// replaced by the rename without being written to.
fn open_to_scrub(path: &Path) -> io::Result<Option<File>> {
    use rustix::io::Errno;
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW;
    match OpenOptions::new()
        .write(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) if f.metadata()?.is_file() => Ok(Some(f)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // ELOOP: a symbolic link; ENXIO: a FIFO without a reader; EISDIR.
        Err(e)
            if [Errno::LOOP, Errno::NXIO, Errno::ISDIR]
                .iter()
                .any(|x| e.raw_os_error() == Some(x.raw_os_error())) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn zero_fill(mut f: File) -> io::Result<()> {
    let len = f.metadata()?.len().min(MAX_SCRUB);
    let zeros = [0u8; 4096];
    let mut left = len;
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(0))?;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

/// Overwrites a file with zeros, then removes it and fsyncs its directory.
pub fn scrub_and_remove(path: &Path) -> io::Result<()> {
    match open_to_scrub(path)? {
        Some(f) => zero_fill(f)?,
        None if std::fs::symlink_metadata(path).is_err() => return Ok(()),
        None => {}
    }
    std::fs::remove_file(path)?;
    fsync_dir(parent(path))
}

/// Removes (scrubbing first) temp files left in `dir` by a crash during
/// [`write_atomic`] / [`write_secret`].
pub fn remove_stale_temps(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") && entry.file_type()?.is_file() {
            scrub_and_remove(&entry.path())?;
        }
    }
    Ok(())
}

/// Opens a file for reading if it is a regular file (a FIFO is opened
/// non-blocking and refused, never waited on): with it, whether it can be read
/// at all (`--check-config`: permission denied is not "no such file").
pub fn open_regular(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, socket, device or directory)",
        ));
    }
    Ok((f, meta))
}

/// Reads a small file whole, refusing anything that is not a regular file (a
/// FIFO is opened non-blocking and refused, never waited on) or that is longer
/// than `max` bytes. Errors name what was expected.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let (f, meta) = open_regular(path)?;
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes, more than the {max} such a file may hold",
                meta.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than the {max} bytes such a file may hold"),
        ));
    }
    Ok(out)
}

/// A configuration file's text: a regular file of at most
/// [`crate::util::config::MAX_CONFIG`] bytes, so that a FIFO or a device given
/// by mistake is refused, not waited on. Errors name the file.
pub fn read_config(path: &Path) -> Result<String, crate::util::config::ConfigError> {
    read_bounded_text(path, crate::util::config::MAX_CONFIG)
        .map_err(crate::util::config::ConfigError::io(path))
}

/// [`read_bounded`] for UTF-8 text.
pub fn read_bounded_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// An exclusive lock on a directory (`flock` on `DIR/lock`), held until dropped
/// or the process ends (the kernel releases it: a killed owner leaves no stale lock).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// The name of the lock file in a locked directory.
pub const LOCK_FILE: &str = "lock";

/// Takes the exclusive lock of `dir` (created, mode 0700, if missing), for one
/// owner of a state directory or store. If another process holds it, the error
/// names that process (the lock file holds its PID) and `what` the directory is.
pub fn lock_dir(dir: &Path, what: &str) -> io::Result<DirLock> {
    use std::io::Read;
    use std::os::unix::fs::DirBuilderExt;
    let named = |p: &Path| {
        let p = p.display().to_string();
        move |e: io::Error| io::Error::new(e.kind(), format!("{what} lock {p}: {e}"))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(named(dir))?;
    let path = dir.join(LOCK_FILE);
    let lock_err = named(&path);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(&path)
        .map_err(&lock_err)?;
    if !f.metadata().map_err(&lock_err)?.is_file() {
        return Err(lock_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            f.set_len(0).map_err(&lock_err)?;
            f.write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(&lock_err)?;
            Ok(DirLock { _file: f })
        }
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut pid = String::new();
            let _ = (&mut f).take(32).read_to_string(&mut pid);
            let pid = pid.trim();
            let holder = if pid.is_empty() {
                "another process".to_string()
            } else {
                format!("process {pid}")
            };
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{what} {} is in use by {holder} (it holds {}); stop it first, or use another directory",
                    dir.display(),
                    path.display()
                ),
            ))
        }
        Err(e) => Err(lock_err(io::Error::from(e))),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::unwrap_used)] // fixtures, not state files
mod tests {
    use super::{temp_path, write_atomic};

    #[test]
    fn a_planted_temp_file_is_neither_written_through_nor_waited_on() {
        let dir = std::env::temp_dir().join(format!("logseal-fsutil-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("status.json");
        // A symbolic link where the temp file goes: the victim is untouched.
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        std::os::unix::fs::symlink(&victim, temp_path(&target)).unwrap();
        write_atomic(&target, b"new", "test").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!std::fs::symlink_metadata(&target).unwrap().is_symlink());
        // A FIFO there: replaced at once (an open would wait for a reader).
        rustix::fs::mknodat(
            rustix::fs::CWD,
            temp_path(&target),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        write_atomic(&target, b"newer", "test").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"newer");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
