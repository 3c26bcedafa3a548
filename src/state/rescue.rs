//! The rescue journal: outcomes a provider confirmed that could not be
//! recorded because the state database went away mid-apply.
//!
//! The apply writes it to a local file and the CLI also prints it on stderr
//! (CI runners are thrown away with their files). `memberctl state recover
//! FILE` folds it in later, through the same recorder an apply uses.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StateError;
use crate::atomic_write::write_atomically;
use crate::provider::{Operation, Outcome};

/// The rescue format this memberctl writes.
pub const RESCUE_VERSION: u32 = 1;

/// One batch's answer, as the provider gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RescuedBatch {
    /// The provider.
    pub provider: String,
    /// When the answer arrived.
    pub at: String,
    /// What was sent.
    pub ops: Vec<Operation>,
    /// What came back, one per operation.
    pub outcomes: Vec<Outcome>,
}

/// A rescue journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rescue {
    /// The format ([`RESCUE_VERSION`]).
    pub memberctl_rescue: u32,
    /// The state's name.
    pub state: String,
    /// The state's lineage.
    pub lineage: Uuid,
    /// The serial the state was at when the answers could not be recorded:
    /// `state recover` folds them into that state only, once (a second
    /// recover, or one after later runs, would put old answers over newer
    /// records). Absent in rescue journals written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u64>,
    /// The answers not recorded.
    pub batches: Vec<RescuedBatch>,
}

impl Rescue {
    /// Writes the journal beside the run (`memberctl-rescue-NAME-PID.json`
    /// in the current directory); answers its path and its text.
    pub fn save(&self) -> Result<(PathBuf, String), StateError> {
        let safe: String =
            self.state.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let path = PathBuf::from(format!("memberctl-rescue-{safe}-{}.json", std::process::id()));
        let text = serde_json::to_string(self).expect("a rescue journal serialises");
        write_atomically(&path, |out| out.write_all(text.as_bytes())).map_err(|e| StateError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        })?;
        Ok((path, text))
    }

    /// Reads a rescue journal.
    pub fn read(path: &Path) -> Result<Rescue, StateError> {
        let bytes = std::fs::read(path).map_err(|e| StateError::io("read", path, e))?;
        let rescue: Rescue = serde_json::from_slice(&bytes)
            .map_err(|e| StateError::Corrupt { path: path.to_owned(), detail: e.to_string() })?;
        if rescue.memberctl_rescue > RESCUE_VERSION {
            return Err(StateError::NewerFormat { path: path.to_owned(), found: rescue.memberctl_rescue });
        }
        Ok(rescue)
    }
}
