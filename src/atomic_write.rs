//! Replacing a file atomically: the state, a saved plan (`plan --out`) and
//! `import --append` all write through here, so a crash or a full disk never
//! leaves a half-written file where a whole one was.
//!
//! The bytes go to a uniquely named temporary file in the same directory
//! (`tempfile`), are flushed and fsynced, the file is renamed over the target
//! (`persist`), and the directory is fsynced so the rename survives a power
//! cut. Any failure removes the temporary file and leaves the target as it
//! was.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Which step of an atomic write failed, and on which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} `{}`", path.display())]
pub struct AtomicWriteError {
    /// What was being done: `create`, `write`, `sync`, `replace`.
    pub action: &'static str,
    /// The file the failure concerns (the target, not the temporary file).
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

/// Writes `path` atomically with what `fill` writes into the buffered writer
/// it is given. Answers the number of bytes written.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<u64, AtomicWriteError> {
    let fail = |action, source| AtomicWriteError { action, path: path.to_owned(), source };
    // A device or a pipe (`--out /dev/stdout`) is written in place: renaming
    // a file over it would replace the device itself. A symlink is followed,
    // so the link stays and its target is replaced.
    let target = match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return write_in_place(path, fill).map_err(|(action, e)| fail(action, e)),
        Ok(_) => std::fs::canonicalize(path).map_err(|e| fail("resolve", e))?,
        Err(_) => path.to_owned(),
    };
    let path = target.as_path();
    let dir = parent_dir(path);
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", path.file_name().unwrap_or_default().to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| fail("create a temporary file beside", e))?;
    let mut writer = CountingWriter { inner: BufWriter::new(temp), written: 0 };
    fill(&mut writer).map_err(|e| fail("write", e))?;
    let written = writer.written;
    let temp = writer.inner.into_inner().map_err(|e| fail("write", e.into_error()))?;
    temp.as_file().sync_all().map_err(|e| fail("sync", e))?;
    temp.persist(path).map_err(|e| fail("replace", e.error))?;
    sync_dir(dir).map_err(|e| fail("sync the directory of", e))?;
    Ok(written)
}

fn write_in_place(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<u64, (&'static str, io::Error)> {
    let device = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| ("open", e))?;
    let mut writer = CountingWriter { inner: BufWriter::new(device), written: 0 };
    fill(&mut writer).and_then(|()| writer.flush()).map_err(|e| ("write", e))?;
    Ok(writer.written)
}

/// Fsyncs a directory so a rename in it survives a power cut. Platforms
/// that cannot open a directory for syncing are not an error.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let handle = File::open(dir)?;
    match handle.sync_all() {
        Err(e) if e.kind() != io::ErrorKind::InvalidInput && e.kind() != io::ErrorKind::PermissionDenied => Err(e),
        _ => Ok(()),
    }
}

/// The directory `path` lives in (`.` for a bare file name).
#[must_use]
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

struct CountingWriter<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::write_atomically;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "old").unwrap();
        let written = write_atomically(&path, |w| w.write_all(b"new content")).unwrap();
        assert_eq!(written, 11);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new content");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symlink_keeps_pointing_at_the_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        std::fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomically(&link, |w| w.write_all(b"new")).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "old").unwrap();
        let err = write_atomically(&path, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.action, "write");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
