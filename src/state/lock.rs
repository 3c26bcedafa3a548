//! The state lock: one run at a time per state file.
//!
//! The lock is an OS file lock on `STATE.lock`, so it is released by the
//! kernel when its holder dies, however it dies. The file's content says who
//! holds it (pid, host, command, since when), for the error a second run
//! shows. A holder that died leaves its content behind: the next run sees
//! that, reports the stale lock, and takes over. The file is never deleted,
//! because deleting a lock file races with a run that has just opened it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{StateError, StatePaths};

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// The command it runs (`plan`, `apply`, ...).
    pub command: String,
    /// When it took the lock (RFC 3339).
    pub since: String,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`memberctl {}` (pid {} on {}) since {}", self.command, self.pid, self.host, self.since)
    }
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    file: File,
    /// A previous holder that died without releasing (now taken over).
    pub stale: Option<LockInfo>,
}

pub(crate) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_owned()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn read_info(file: &mut File) -> Option<LockInfo> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Opens the lock file, refusing anything but a plain file: the lock note
/// is written over whatever the path leads to, and a symbolic link (which a
/// pull request can commit) would lead it to the state file itself.
fn open(path: &Path) -> Result<File, StateError> {
    let not_a_file = |what: &str| {
        StateError::io(
            "open the lock file",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("it is {what}, not a file; remove it (memberctl makes the lock file itself)"),
            ),
        )
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(not_a_file("a symbolic link")),
        Ok(meta) if !meta.is_file() => return Err(not_a_file("not a regular file")),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    // And no link put there between the look and the open.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let file = options.open(path).map_err(|e| match e.raw_os_error() {
        #[cfg(unix)]
        Some(libc::ELOOP) => not_a_file("a symbolic link"),
        _ => StateError::io("open the lock file", path, e),
    })?;
    // A FIFO or a device put there between the look and the open.
    if !file.metadata().map_err(|e| StateError::io("open the lock file", path, e))?.is_file() {
        return Err(not_a_file("not a regular file"));
    }
    Ok(file)
}

impl Lock {
    /// Takes the lock, waiting up to `timeout` (zero: fail at once).
    pub fn acquire(paths: &StatePaths, command: &str, timeout: Duration) -> Result<Lock, StateError> {
        let path = paths.lock();
        let mut file = open(&path)?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        let holder =
                            read_info(&mut file).map_or_else(|| "another memberctl run".to_owned(), |i| i.to_string());
                        return Err(StateError::Locked { path: paths.state.clone(), holder });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::Error(e)) => return Err(StateError::io("lock", &path, e)),
            }
        }
        let stale = read_info(&mut file);
        let info = LockInfo {
            pid: std::process::id(),
            host: host_name(),
            command: command.to_owned(),
            since: crate::clock::now_rfc3339(),
        };
        write_info(&mut file, Some(&info)).map_err(|e| StateError::io("write the lock file", &path, e))?;
        Ok(Lock { file, stale })
    }

    /// Clears a lock left by a run that died (`memberctl state unlock`).
    /// Refuses when a live run holds it. Answers the previous holder, if any.
    pub fn force_unlock(paths: &StatePaths) -> Result<Option<LockInfo>, StateError> {
        let lock = Lock::acquire(paths, "state unlock", Duration::ZERO)?;
        Ok(lock.stale.clone())
    }
}

fn write_info(file: &mut File, info: Option<&LockInfo>) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    if let Some(info) = info {
        file.write_all(serde_json::to_string(info).unwrap_or_default().as_bytes())?;
    }
    file.sync_data()
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Drop cannot fail; a note left behind is harmless (the OS lock is
        // what counts, and the next run reports the note as stale), but say so.
        if let Err(error) = write_info(&mut self.file, None) {
            log::warn!("could not clear the lock note: {error}; the next run will report it as stale");
        }
        if let Err(error) = self.file.unlock() {
            log::warn!("could not release the state lock: {error}; it is released when this process exits");
        }
    }
}
