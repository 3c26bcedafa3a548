//! Reading and writing the state file.
//!
//! Writes are atomic: the new version goes to a temp file in the same
//! directory, is fsynced, the current version is kept as `.backup`, the temp
//! file is renamed over the state, and the directory is fsynced. A state that
//! cannot be read is reported and never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Resource, State, StateError, StatePaths, FORMAT_VERSION};

/// The largest state file read (a 100,000-member state is about 60 MiB).
pub const MAX_STATE_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Serialize)]
struct StateFileOut<'a> {
    format_version: u32,
    lineage: Uuid,
    serial: u64,
    resources: Vec<&'a Resource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFileIn {
    format_version: u32,
    lineage: Uuid,
    serial: u64,
    resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct VersionOnly {
    format_version: u32,
}

/// Parses state JSON; `path` is for messages.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<State, StateError> {
    let corrupt = |detail: String| StateError::Corrupt { path: path.to_owned(), detail };
    // Check the version first, so a newer format is reported as such and not
    // as whatever field it added.
    if let Ok(v) = serde_json::from_slice::<VersionOnly>(bytes) {
        if v.format_version > FORMAT_VERSION {
            return Err(StateError::NewerFormat { path: path.to_owned(), found: v.format_version });
        }
    }
    let file: StateFileIn = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.format_version == 0 {
        return Err(corrupt("format_version 0 is not a memberctl state".to_owned()));
    }
    let mut resources = std::collections::BTreeMap::new();
    for resource in file.resources {
        let address = resource.address.clone();
        if resources.insert(address.clone(), resource).is_some() {
            return Err(corrupt(format!("address `{address}` appears twice")));
        }
    }
    Ok(State { lineage: file.lineage, serial: file.serial, resources })
}

/// Reads the state; `Ok(None)` when there is no state file yet.
pub fn read(paths: &StatePaths) -> Result<Option<State>, StateError> {
    let path = &paths.state;
    match fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_STATE_BYTES => {
            return Err(StateError::Corrupt {
                path: path.clone(),
                detail: format!("{} bytes is more than the {MAX_STATE_BYTES}-byte limit", meta.len()),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read", path, e)),
    }
    let bytes = fs::read(path).map_err(|e| StateError::io("read", path, e))?;
    parse(path, &bytes).map(Some)
}

/// Serialises a state to pretty JSON.
#[must_use]
pub fn to_json(state: &State) -> Vec<u8> {
    let out = StateFileOut {
        format_version: FORMAT_VERSION,
        lineage: state.lineage,
        serial: state.serial,
        resources: state.resources.values().collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&out).expect("state serialises");
    bytes.push(b'\n');
    bytes
}

/// Writes `state` atomically, keeping the previous file as `.backup`.
/// Returns the number of bytes written.
pub fn write(paths: &StatePaths, state: &State) -> Result<u64, StateError> {
    let dir = paths.dir();
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        paths.state.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let bytes = to_json(state);
    {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| StateError::io("create", &tmp, e))?;
        let mut writer = BufWriter::new(file);
        writer.write_all(&bytes).map_err(|e| StateError::io("write", &tmp, e))?;
        let file = writer.into_inner().map_err(|e| StateError::io("write", &tmp, e.into_error()))?;
        file.sync_all().map_err(|e| StateError::io("sync", &tmp, e))?;
    }
    if paths.state.exists() {
        keep_backup(paths)?;
    }
    fs::rename(&tmp, &paths.state).map_err(|e| StateError::io("replace", &paths.state, e))?;
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

/// Keeps the current state as `.backup`, replacing the old backup atomically.
fn keep_backup(paths: &StatePaths) -> Result<(), StateError> {
    let backup = paths.backup();
    let staging = paths.dir().join(format!(
        ".{}.tmp-{}",
        backup.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&staging);
    if fs::hard_link(&paths.state, &staging).is_err() {
        fs::copy(&paths.state, &staging).map_err(|e| StateError::io("back up", &paths.state, e))?;
    }
    fs::rename(&staging, &backup).map_err(|e| StateError::io("back up", &backup, e))
}

/// Fsyncs a directory so a rename in it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), StateError> {
    match File::open(dir) {
        Ok(handle) => handle.sync_all().or(Ok(())),
        Err(e) => Err(StateError::io("open", dir, e)),
    }
}
