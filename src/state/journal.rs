//! The apply journal: every batch's intent and outcome, appended and fsynced.
//!
//! Before a batch is sent its intent is appended and synced; as soon as its
//! answer arrives the outcomes are appended. Each entry is one JSON line, so
//! a write costs O(batch), not O(state).
//!
//! An outcome is written to the file at once (a killed memberctl loses
//! none) and made durable by the sync of the next intent, or before the
//! fold: so before anything more is sent, every earlier answer is on disk.
//! Only a power cut between an answer and the next send can lose that
//! answer, and then it is not lost silently: its intent is on disk, so
//! replay makes its addresses `uncertain`, and the next apply's resend is
//! answered "already there". That saves one sync per batch, a third of the
//! syncs of a sandbox apply (about 0.5 ms each on a virtual disk). At the end of apply the journal is folded
//! into the state with one atomic write and removed. A run that finds a
//! journal (a crash, a kill) replays it first: outcomes are recorded as they
//! were, and intents with no outcome make their addresses `uncertain`.
//!
//! The journal's first entry records the serial of the state it began from.
//! The fold writes the state at a higher serial before it removes the
//! journal, so a journal older than the state was already folded (the run
//! stopped between the two steps) and is removed, never replayed twice.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::backend::RecordBatches;
use super::rescue::{Rescue, RescuedBatch, RESCUE_VERSION};
use super::{failpoint, file, State, StateError, StatePaths};
use crate::atomic_write::sync_dir;
use crate::provider::{Operation, Outcome};

/// One line of the journal. Written from borrowed data (a batch's
/// operations and outcomes are not copied to be journaled), read back owned.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Entry<'a> {
    Begin { lineage: Uuid, serial: u64, at: Cow<'a, str> },
    Intent { batch: u64, provider: Cow<'a, str>, ops: Cow<'a, [Operation]> },
    Outcome { batch: u64, at: Cow<'a, str>, outcomes: Cow<'a, [Outcome]> },
}

/// What replaying a journal found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Batches whose outcome was recorded.
    pub completed: usize,
    /// Batches sent (or about to be) with no recorded outcome.
    pub interrupted: usize,
    /// Addresses left uncertain by those.
    pub uncertain: Vec<String>,
}

/// What a journal beside the state turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// There is no journal.
    Nothing,
    /// The journal began from an older serial than the state's: its run
    /// folded it into the state and stopped before removing it. It holds
    /// nothing the state lacks.
    AlreadyFolded,
    /// The journal of an interrupted apply, replayed.
    Replayed(Replay),
}

/// Replays the journal, if any, onto `state` (in memory only).
///
/// Returns the state to use and what the journal was. A state that did not
/// exist yet takes the journal's lineage.
pub fn replay(paths: &StatePaths, state: Option<State>) -> Result<(Option<State>, Found), StateError> {
    let path = paths.journal();
    let handle = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((state, Found::Nothing)),
        Err(e) => return Err(StateError::io("read", &path, e)),
    };
    let mut state = state;
    let mut intents: HashMap<u64, Vec<Operation>> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    let mut replay = Replay::default();
    for line in BufReader::new(handle).lines() {
        let line = line.map_err(|e| StateError::io("read", &path, e))?;
        // A torn line (a crash mid-append) is skipped, not taken as the end:
        // entries after it were written and fsynced, and must be replayed.
        let Ok(entry) = serde_json::from_str::<Entry>(&line) else { continue };
        match entry {
            Entry::Begin { lineage, serial, .. } => match &state {
                Some(s) if s.lineage != lineage => {
                    return Err(StateError::JournalMismatch { path, journal: lineage, state: s.lineage })
                }
                // Replaying it again would count its resends twice and
                // move the serial twice.
                Some(s) if s.serial > serial => return Ok((state, Found::AlreadyFolded)),
                Some(_) => {}
                None => state = Some(State { lineage, serial, resources: std::collections::BTreeMap::new() }),
            },
            Entry::Intent { batch, ops, .. } => {
                order.push(batch);
                intents.insert(batch, ops.into_owned());
            }
            Entry::Outcome { batch, at, outcomes } => {
                if let (Some(ops), Some(state)) = (intents.remove(&batch), state.as_mut()) {
                    for (op, outcome) in ops.iter().zip(outcomes.iter()) {
                        state.record(op, outcome, &at);
                    }
                    replay.completed += 1;
                }
            }
        }
    }
    let now = crate::clock::now_rfc3339();
    if let Some(state) = state.as_mut() {
        for batch in order {
            if let Some(ops) = intents.remove(&batch) {
                replay.interrupted += 1;
                for op in &ops {
                    let reason = "memberctl stopped before the answer was recorded".to_owned();
                    state.record(op, &Outcome::Uncertain { reason }, &now);
                    replay.uncertain.push(op.address.to_string());
                }
            }
        }
    }
    Ok((state, Found::Replayed(replay)))
}

/// Removes the journal once its contents are in the state file, and makes
/// the removal durable.
pub(super) fn remove(paths: &StatePaths) -> Result<(), StateError> {
    let path = paths.journal();
    std::fs::remove_file(&path).map_err(|e| StateError::io("remove", &path, e))?;
    sync_dir(paths.dir()).map_err(|e| StateError::io("sync the directory of", &path, e))
}

/// The failpoint that plays a disk that fills up once sending has begun:
/// outcome lines and the state write fail with `ENOSPC`.
const DISK_FULL: &str = "disk-full";
/// `ENOSPC` on Linux.
const NO_SPACE: i32 = 28;

/// Records an apply to the state file: journal entries as it goes, one
/// state write at the end.
pub struct FileRecorder {
    paths: StatePaths,
    state: State,
    journal: File,
    next_batch: u64,
    /// Batches whose intent is written but whose outcome is not yet: their
    /// intent lines as written, read back only if the batch is abandoned
    /// (so recording a batch copies none of its operations).
    open: HashMap<u64, Vec<u8>>,
    /// Bytes appended to the journal so far.
    pub journal_bytes: u64,
    /// Outcomes were appended since the last sync.
    unsynced: bool,
    /// Answers in the state in memory whose outcome line could not be
    /// appended (a full disk): should the state write fail too, they go to
    /// a rescue journal rather than be lost.
    unsaved: Vec<RescuedBatch>,
}

impl FileRecorder {
    /// Starts a journal for changes to `state`. Any earlier journal must have
    /// been folded in first.
    pub fn begin(paths: &StatePaths, state: State) -> Result<FileRecorder, StateError> {
        let path = paths.journal();
        let journal = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StateError::io("create", &path, e))?;
        sync_dir(paths.dir()).map_err(|e| StateError::io("sync the directory of", &path, e))?;
        let mut recorder = FileRecorder {
            paths: paths.clone(),
            state,
            journal,
            next_batch: 0,
            open: HashMap::new(),
            journal_bytes: 0,
            unsynced: false,
            unsaved: Vec::new(),
        };
        let begin = Entry::Begin {
            lineage: recorder.state.lineage,
            serial: recorder.state.serial,
            at: crate::clock::now_rfc3339().into(),
        };
        recorder.append(&begin, true)?;
        Ok(recorder)
    }

    /// Appends one entry, and syncs it (with every entry before it) when
    /// `sync`; answers the line written.
    fn append(&mut self, entry: &Entry<'_>, sync: bool) -> Result<Vec<u8>, StateError> {
        let mut line = serde_json::to_vec(entry).expect("journal entries serialise");
        line.push(b'\n');
        let path = self.paths.journal();
        if let Err(error) = self.journal.write_all(&line) {
            // A line written in part (a full disk) is cut off again, so the
            // lines after it, if any can be written, stay readable.
            let end = self.journal_bytes;
            let _ = self.journal.set_len(end).and_then(|()| self.journal.seek(SeekFrom::Start(end)));
            return Err(StateError::io("append to", &path, error));
        }
        self.journal_bytes += line.len() as u64;
        if sync {
            self.sync()?;
        } else {
            self.unsynced = true;
        }
        Ok(line)
    }

    fn sync(&mut self) -> Result<(), StateError> {
        self.journal.sync_data().map_err(|e| StateError::io("sync", &self.paths.journal(), e))?;
        self.unsynced = false;
        Ok(())
    }

    /// The error of a state write that failed after answers could not be
    /// journaled: those answers in a rescue journal, saved if it can be and
    /// printed in any case, for `memberctl state recover`.
    fn rescue(&mut self, error: &StateError) -> StateError {
        let rescue = Rescue {
            memberctl_rescue: RESCUE_VERSION,
            state: self.paths.state.display().to_string(),
            lineage: self.state.lineage,
            // The serial on disk: the state in memory was one ahead of it.
            serial: Some(self.state.serial.saturating_sub(1)),
            batches: std::mem::take(&mut self.unsaved),
        };
        let document = serde_json::to_string(&rescue).expect("a rescue journal serialises");
        let saved = rescue.save().ok().map(|(path, _)| path);
        let cause = match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        };
        StateError::Unrecorded { state: self.paths.state.clone(), cause, rescue: saved, document }
    }

    /// The operations of an open batch, read back from its intent line.
    fn open_ops(line: &[u8]) -> Vec<Operation> {
        match serde_json::from_slice::<Entry<'_>>(line) {
            Ok(Entry::Intent { ops, .. }) => ops.into_owned(),
            _ => unreachable!("an open batch's line is the intent this recorder wrote"),
        }
    }

    /// Appends a batch's intent and syncs it (and every outcome before it):
    /// the batch may be sent once this returns. Answers the batch id for
    /// [`FileRecorder::outcome`].
    pub fn intent(&mut self, provider: &str, ops: &[Operation]) -> Result<u64, StateError> {
        let batch = self.append_intent(provider, ops)?;
        self.sync()?;
        Ok(batch)
    }

    /// Appends the intents of batches sent together, one line each, and
    /// syncs them once: the batches may be sent once this returns. When that fails, none of them is left in the journal (none
    /// is sent, so none may be replayed as uncertain).
    pub fn intents(&mut self, provider: &str, batches: &[Vec<Operation>]) -> Result<Vec<u64>, StateError> {
        let (bytes, next_batch) = (self.journal_bytes, self.next_batch);
        let written = batches
            .iter()
            .map(|ops| self.append_intent(provider, ops))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|ids| self.sync().map(|()| ids));
        if written.is_err() {
            // Best effort: the error is what counts.
            let _ = self.journal.set_len(bytes);
            let _ = self.journal.seek(SeekFrom::Start(bytes));
            for batch in next_batch..self.next_batch {
                self.open.remove(&batch);
            }
            (self.journal_bytes, self.next_batch) = (bytes, next_batch);
        }
        written
    }

    fn append_intent(&mut self, provider: &str, ops: &[Operation]) -> Result<u64, StateError> {
        let batch = self.next_batch;
        self.next_batch += 1;
        let line = self.append(&Entry::Intent { batch, provider: provider.into(), ops: ops.into() }, false)?;
        self.open.insert(batch, line);
        Ok(batch)
    }

    /// Appends a batch's outcomes (synced with the next intent, or before
    /// the fold) and records them in the state in memory.
    pub fn outcome(&mut self, batch: u64, ops: &[Operation], outcomes: &[Outcome]) -> Result<(), StateError> {
        let at = crate::clock::now_rfc3339();
        // In the state in memory first: the provider's answer is kept even
        // when its line cannot be written.
        self.open.remove(&batch);
        for (op, outcome) in ops.iter().zip(outcomes) {
            self.state.record(op, outcome, &at);
        }
        let entry = Entry::Outcome { batch, at: at.as_str().into(), outcomes: outcomes.into() };
        let appended = if failpoint::armed(DISK_FULL) {
            Err(StateError::io("append to", &self.paths.journal(), std::io::Error::from_raw_os_error(NO_SPACE)))
        } else {
            self.append(&entry, false)
        };
        if appended.is_err() {
            let provider = ops.first().map(|op| op.address.provider().to_owned()).unwrap_or_default();
            self.unsaved.push(RescuedBatch { provider, at, ops: ops.to_vec(), outcomes: outcomes.to_vec() });
        }
        appended.map(drop)
    }

    /// Records that a batch's answer will never come (its task panicked, or
    /// was abandoned after a cancel): its addresses become `uncertain` with
    /// `reason`, in the journal and in the state.
    pub fn abandon(&mut self, batch: u64, reason: &str) -> Result<(), StateError> {
        let Some(line) = self.open.remove(&batch) else { return Ok(()) };
        let ops = Self::open_ops(&line);
        let outcomes = vec![Outcome::Uncertain { reason: reason.to_owned() }; ops.len()];
        self.outcome(batch, &ops, &outcomes)
    }

    /// The state as recorded so far.
    #[must_use]
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Folds everything into the state file (one atomic write, serial + 1)
    /// and removes the journal. Answers the state and the bytes written.
    ///
    /// Batches still open (sent, but abandoned before their answer, as on a
    /// second Ctrl-C) leave their addresses `uncertain`.
    pub fn finish(mut self) -> Result<(State, u64), StateError> {
        // Should the state write fail, the journal holds every answer. A
        // sync that fails (a full disk) does not stop the state write,
        // which holds them all too.
        if self.unsynced {
            if let Err(error) = self.sync() {
                log::warn!("{error}; the state write that follows holds every answer");
            }
        }
        let now = crate::clock::now_rfc3339();
        let mut open: Vec<(u64, Vec<u8>)> = self.open.drain().collect();
        open.sort_by_key(|(batch, _)| *batch);
        for (_, line) in open {
            for op in &Self::open_ops(&line) {
                let reason = "the apply was interrupted before the answer arrived".to_owned();
                self.state.record(op, &Outcome::Uncertain { reason }, &now);
            }
        }
        self.state.serial += 1;
        let written = if failpoint::armed(DISK_FULL) {
            Err(StateError::io("write", &self.paths.state, std::io::Error::from_raw_os_error(NO_SPACE)))
        } else {
            file::write(&self.paths, &self.state)
        };
        let bytes = match written {
            Ok(bytes) => bytes,
            Err(error) if !self.unsaved.is_empty() => return Err(self.rescue(&error)),
            Err(error) => return Err(error),
        };
        if failpoint::armed("after-state-rename") {
            std::process::abort();
        }
        drop(self.journal);
        remove(&self.paths)?;
        Ok((self.state, bytes))
    }
}

impl RecordBatches for FileRecorder {
    fn intent(&mut self, provider: &str, ops: &[Operation]) -> Result<u64, StateError> {
        FileRecorder::intent(self, provider, ops)
    }

    fn intents(&mut self, provider: &str, batches: &[Vec<Operation>]) -> Result<Vec<u64>, StateError> {
        FileRecorder::intents(self, provider, batches)
    }

    fn outcome(&mut self, batch: u64, ops: &[Operation], outcomes: &[Outcome]) -> Result<(), StateError> {
        FileRecorder::outcome(self, batch, ops, outcomes)
    }

    fn abandon(&mut self, batch: u64, reason: &str) -> Result<(), StateError> {
        FileRecorder::abandon(self, batch, reason)
    }

    fn state(&self) -> &State {
        &self.state
    }

    fn journal_bytes(&self) -> u64 {
        self.journal_bytes
    }

    fn finish(self: Box<Self>) -> Result<(State, u64), StateError> {
        FileRecorder::finish(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::{replay, FileRecorder as Recorder, Found};
    use crate::address::Address;
    use crate::attributes::Attributes;
    use crate::provider::{Operation, Outcome, RemoteIds};
    use crate::state::{State, StatePaths, Status};

    fn invite(email: &str) -> Operation {
        Operation::invite("sandbox", Attributes { email: email.to_owned(), ..Attributes::default() })
    }

    /// A journal of one answered batch, begun from a state at serial 4.
    fn journal(paths: &StatePaths) -> State {
        let mut state = State::new();
        state.serial = 4;
        let mut recorder = Recorder::begin(paths, state.clone()).expect("begin");
        let ops = [invite("ana@example.com")];
        let batch = recorder.intent("sandbox", &ops).expect("intent");
        recorder.outcome(batch, &ops, &[Outcome::Invited(RemoteIds::default())]).expect("outcome");
        state
    }

    // Regression: #9 defect 3: the serial in `Begin` tells a journal to
    // replay from one already folded into the state.
    #[test]
    fn a_journal_is_replayed_onto_the_state_it_began_from_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = StatePaths::new(dir.path().join("memberctl.state.json"));
        let before = journal(&paths);

        let (state, found) = replay(&paths, Some(before.clone())).expect("replays");
        let Found::Replayed(replayed) = found else { panic!("{found:?}") };
        assert_eq!((replayed.completed, replayed.interrupted), (1, 0));
        let state = state.expect("state");
        assert_eq!(state.resources[&Address::new("sandbox", "ana@example.com")].status, Status::Invited);

        let mut folded = state;
        folded.serial = before.serial + 1;
        let (state, found) = replay(&paths, Some(folded.clone())).expect("reads");
        assert_eq!(found, Found::AlreadyFolded);
        assert_eq!(state, Some(folded), "the state is left as it is");
    }

    // #13: an entry costs O(batch), whatever the size of the state.
    #[test]
    fn an_entry_costs_its_batch_not_the_state() {
        let dir = tempfile::tempdir().expect("temp dir");
        let entries = |state: State| {
            let paths = StatePaths::new(dir.path().join(format!("{}.state.json", state.resources.len())));
            let mut recorder = Recorder::begin(&paths, state).expect("begin");
            let begun = recorder.journal_bytes;
            let ops = [invite("new@example.com")];
            let batch = recorder.intent("sandbox", &ops).expect("intent");
            recorder.outcome(batch, &ops, &[Outcome::Invited(RemoteIds::default())]).expect("outcome");
            recorder.journal_bytes - begun
        };
        let mut large = State::new();
        for i in 0..2000 {
            let op = invite(&format!("m{i}@example.com"));
            large.record(&op, &Outcome::Invited(RemoteIds::default()), "t0");
        }
        assert_eq!(entries(State::new()), entries(large));
    }

    // #13: the recorder keeps an open batch's intent line, not a copy of
    // its operations; abandoning it reads them back from that line.
    #[test]
    fn an_abandoned_or_unanswered_batch_is_recorded_from_its_intent_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = StatePaths::new(dir.path().join("memberctl.state.json"));
        let mut recorder = Recorder::begin(&paths, State::new()).expect("begin");
        let abandoned = [invite("ana@example.com"), invite("bo@example.com")];
        let batch = recorder.intent("sandbox", &abandoned).expect("intent");
        recorder.abandon(batch, "lost in flight").expect("abandon");
        let unanswered = [invite("cy@example.com")];
        recorder.intent("sandbox", &unanswered).expect("intent");
        let (state, _) = recorder.finish().expect("finish");
        for op in &abandoned {
            let resource = &state.resources[&op.address];
            assert_eq!(resource.status, Status::Uncertain);
            assert_eq!(resource.attributes, op.attributes);
            assert_eq!(resource.message.as_deref(), Some("lost in flight"));
        }
        let resource = &state.resources[&unanswered[0].address];
        assert_eq!(resource.status, Status::Uncertain);
        assert_eq!(resource.message.as_deref(), Some("the apply was interrupted before the answer arrived"));
        assert!(!paths.journal().exists(), "folded and removed");
    }
}
