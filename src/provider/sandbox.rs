//! The built-in `sandbox` provider: no network, no account.
//!
//! It records every operation as one JSON line in a local outbox file and
//! answers with the same per-email outcome model as the real providers: an
//! email already present is `adopted`, an update or removal of an email that
//! is not there fails. Its capabilities come from the config, so tests can
//! make it invite-only like the real APIs.
//!
//! A line `{"op":"accept","provider":NAME,"email":EMAIL}` (appended by hand
//! or by a test) plays the person accepting their invitation: a resend to
//! them is then answered "already a member", which adopts them. Lines
//! appended by hand also play changes made at the service behind
//! memberctl's back (a `remove`, or an `update` with other attributes):
//! the sandbox lists what its outbox holds, so `plan --refresh` shows them
//! as drift.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{
    BatchError, BoxFuture, Listing, Observed, Operation, OperationKind, Outcome, Provider, ProviderSettings, RemoteIds,
};
use crate::address::normalize_email;
use crate::attributes::{Attributes, Method};

/// What an outbox line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxOp {
    /// An invitation (or a direct add).
    Invite,
    /// An invitation sent again.
    Resend,
    /// Changed attributes.
    Update,
    /// A removal.
    Remove,
    /// The person accepted (written by hand or by tests, never by memberctl).
    Accept,
}

impl From<OperationKind> for OutboxOp {
    fn from(kind: OperationKind) -> Self {
        match kind {
            OperationKind::Invite => OutboxOp::Invite,
            OperationKind::Resend => OutboxOp::Resend,
            OperationKind::Update => OutboxOp::Update,
            OperationKind::Remove => OutboxOp::Remove,
        }
    }
}

/// One outbox line.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// What happened.
    pub op: OutboxOp,
    /// The provider name.
    pub provider: String,
    /// The email as sent.
    pub email: String,
    /// When it was recorded.
    #[serde(default)]
    pub at: String,
    /// What was sent.
    #[serde(default)]
    pub attributes: Attributes,
    /// The invitation id the sandbox answered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_id: Option<String>,
}

/// Who the outbox says is there.
#[derive(Default)]
struct Members<T> {
    /// Invited or added, and not removed, by normalised email: what the
    /// reader keeps of each (a listing: the last attributes).
    present: BTreeMap<String, T>,
    /// Accepted their invitation.
    accepted: HashSet<String>,
    /// Lines in the outbox, of every provider writing to it.
    lines: u64,
}

/// A member's invitation id, when the outbox holds one.
type InviteId = Option<String>;

/// Who is there while sending: an answer needs nothing else of them (a
/// listing reads the outbox afresh), and needs no order.
struct Present {
    present: HashSet<String>,
    accepted: HashSet<String>,
}

/// The sandbox while it sends: who is there, and the outbox held open.
struct Live {
    members: Present,
    /// Opened for appending on the first line to write.
    file: Option<std::fs::File>,
    /// Bytes appended by this client so far.
    written: u64,
    /// Of those, the bytes known to be on disk.
    synced: u64,
    /// A sync failed: what was written since may be lost, so no later answer
    /// may claim it is recorded.
    broken: Option<String>,
    /// Syncs done.
    syncs: u64,
    /// The outbox's line count, which the next invitation id ends with: it
    /// only grows (the outbox is appended to), so ids stay unique across
    /// batches and runs within one second.
    sequence: u64,
}

/// One outbox line, as written (borrowing what the operation holds).
#[derive(Serialize)]
struct OutboxLine<'a> {
    op: OutboxOp,
    provider: &'a str,
    email: &'a str,
    at: &'a str,
    attributes: &'a Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    invite_id: Option<&'a str>,
}

/// The sandbox client.
pub struct Sandbox {
    settings: ProviderSettings,
    /// Loaded from the outbox on first send.
    live: Mutex<Option<Live>>,
}

impl Sandbox {
    /// Builds a client; the outbox is read on first send.
    #[must_use]
    pub fn new(settings: ProviderSettings) -> Self {
        Self { settings, live: Mutex::new(None) }
    }

    fn outbox(&self) -> PathBuf {
        self.settings.outbox.clone().unwrap_or_else(|| PathBuf::from("memberctl.outbox.jsonl"))
    }

    fn error(&self, what: &str, err: &dyn std::fmt::Display) -> BatchError {
        BatchError {
            uncertain: false,
            fatal: true,
            message: format!("sandbox `{}`: cannot {what} `{}`: {err}", self.settings.name, self.outbox().display()),
            hint: Some("check that the outbox's directory exists and is writable".to_owned()),
        }
    }

    /// Reads the outbox; `keep` turns each present member's attributes and
    /// invitation id into what the caller keeps of it.
    fn load<T>(&self, keep: impl Fn(Attributes, InviteId) -> T) -> Result<Members<(T, InviteId)>, BatchError> {
        let path = self.outbox();
        let mut members = Members { present: BTreeMap::new(), accepted: HashSet::new(), lines: 0 };
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(members),
            Err(err) => return Err(self.error("read the outbox", &err)),
        };
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|err| self.error("read the outbox", &err))?;
            members.lines += 1;
            // A line torn by a crash is skipped: it was never answered.
            let Ok(record) = serde_json::from_str::<OutboxRecord>(&line) else { continue };
            if record.provider != self.settings.name {
                continue;
            }
            let email = normalize_email(&record.email);
            match record.op {
                OutboxOp::Invite | OutboxOp::Resend | OutboxOp::Update => {
                    let mut attributes = record.attributes;
                    if attributes.email.is_empty() {
                        attributes.email.clone_from(&record.email);
                    }
                    let id = record.invite_id.or_else(|| members.present.get(&email).and_then(|(_, id)| id.clone()));
                    let kept = keep(attributes, id.clone());
                    members.present.insert(email, (kept, id));
                }
                OutboxOp::Accept => {
                    if !members.present.contains_key(&email) {
                        let kept = keep(Attributes { email: record.email.clone(), ..Attributes::default() }, None);
                        members.present.insert(email.clone(), (kept, None));
                    }
                    members.accepted.insert(email);
                }
                OutboxOp::Remove => {
                    members.present.remove(&email);
                    members.accepted.remove(&email);
                }
            }
        }
        Ok(members)
    }

    /// Answers a batch and appends its lines to the outbox (not yet synced).
    /// Answers the outcomes and, when it wrote any, how far the outbox must
    /// be on disk before they may be given.
    fn write_now(&self, batch: &[Operation]) -> Result<(Vec<Outcome>, Option<u64>), BatchError> {
        let mut guard = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            let loaded = self.load(|_, _| ())?;
            let present = loaded.present.into_keys().collect();
            *guard = Some(Live {
                members: Present { present, accepted: loaded.accepted },
                file: None,
                written: 0,
                synced: 0,
                broken: None,
                syncs: 0,
                sequence: loaded.lines,
            });
        }
        let live = guard.as_mut().expect("loaded above");
        if let Some(reason) = &live.broken {
            return Err(self.error("sync the outbox", reason));
        }
        let members = &mut live.members;
        let mut lines = Vec::new();
        let mut undo = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        let at = crate::clock::now_rfc3339();
        let stamp = at.replace([':', '-'], "");
        for op in batch {
            let email = normalize_email(&op.attributes.email);
            let outcome = match op.kind {
                OperationKind::Invite if members.present.contains(&email) => {
                    Outcome::Adopted { message: "Email already exists".to_owned(), remote: RemoteIds::default() }
                }
                OperationKind::Resend if members.accepted.contains(&email) => Outcome::Adopted {
                    message: "Email already exists (the invitation was accepted)".to_owned(),
                    remote: RemoteIds::default(),
                },
                OperationKind::Invite | OperationKind::Resend => {
                    let ids = RemoteIds {
                        invite_id: Some(format!("sbx-{stamp}-{}", live.sequence)),
                        user_id: None,
                        timestamp_ms: None,
                    };
                    if op.attributes.method == Method::Direct {
                        Outcome::Added(ids)
                    } else {
                        Outcome::Invited(ids)
                    }
                }
                OperationKind::Update if members.present.contains(&email) => Outcome::Updated,
                OperationKind::Remove if members.present.contains(&email) => Outcome::Removed,
                // As a SCIM service's 404: a member already gone is removed,
                // and one to update is drift (the next plan invites it).
                OperationKind::Remove => {
                    outcomes.push(Outcome::Removed);
                    continue;
                }
                OperationKind::Update => {
                    Outcome::Gone { reason: "not a member of the sandbox (removed outside memberctl)".to_owned() }
                }
            };
            // A resend to a member who accepted carries the attributes now
            // configured (a plan folds a due update into it): they are
            // written as an update, so what is recorded is what is there.
            let line_op = match (&outcome, op.kind) {
                (Outcome::Invited(_) | Outcome::Added(_) | Outcome::Updated | Outcome::Removed, kind) => {
                    Some(kind.into())
                }
                (Outcome::Adopted { .. }, OperationKind::Resend) => Some(OutboxOp::Update),
                _ => None,
            };
            if let Some(line_op) = line_op {
                let invite_id = match &outcome {
                    Outcome::Invited(ids) | Outcome::Added(ids) => ids.invite_id.as_deref(),
                    _ => None,
                };
                let record = OutboxLine {
                    op: line_op,
                    provider: &self.settings.name,
                    email: &op.attributes.email,
                    at: &at,
                    attributes: &op.attributes,
                    invite_id,
                };
                serde_json::to_writer(&mut lines, &record).expect("outbox records serialise");
                lines.push(b'\n');
                live.sequence += 1;
                // What the member was, should the lines not reach the outbox.
                undo.push((email.clone(), members.present.contains(&email), members.accepted.contains(&email)));
                if op.kind == OperationKind::Remove {
                    members.present.remove(&email);
                    members.accepted.remove(&email);
                } else {
                    members.present.insert(email);
                }
            }
            outcomes.push(outcome);
        }
        if lines.is_empty() {
            return Ok((outcomes, None));
        }
        if live.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.outbox())
                .map_err(|err| self.error("open the outbox", &err))?;
            live.file = Some(file);
        }
        let file = live.file.as_mut().expect("opened above");
        let before = file.metadata().map_err(|err| self.error("read the outbox", &err))?.len();
        if let Err(err) = file.write_all(&lines) {
            // None of the batch happened (a full disk): the lines written
            // in part are cut off, and the members are as they were, so
            // that every operation's failure is true.
            let _ = file.set_len(before);
            for (email, present, accepted) in undo.into_iter().rev() {
                let members = &mut live.members;
                if present {
                    members.present.insert(email.clone());
                } else {
                    members.present.remove(&email);
                }
                if accepted {
                    members.accepted.insert(email);
                } else {
                    members.accepted.remove(&email);
                }
            }
            return Err(self.error("write the outbox", &err));
        }
        live.written += lines.len() as u64;
        Ok((outcomes, Some(live.written)))
    }

    /// Makes the outbox durable up to `end`: one sync covers every batch
    /// written before it, so concurrent batches share it.
    fn sync_to(&self, end: u64) -> Result<(), BatchError> {
        let mut guard = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let live = guard.as_mut().expect("written before it is synced");
        if let Some(reason) = &live.broken {
            return Err(self.error("sync the outbox", reason));
        }
        if live.synced >= end {
            return Ok(());
        }
        let written = live.written;
        let file = live.file.as_ref().expect("written before it is synced");
        if let Err(err) = file.sync_data() {
            // Once a sync failed, what it covered may be lost whatever a
            // later sync says: every later answer is refused.
            live.broken = Some(err.to_string());
            return Err(self.error("sync the outbox", &err));
        }
        live.synced = written;
        live.syncs += 1;
        Ok(())
    }
}

impl Provider for Sandbox {
    fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    fn batches(&self, operations: Vec<Operation>) -> Vec<Vec<Operation>> {
        super::chunk(operations, self.settings.batch_size)
    }

    fn send<'a>(&'a self, batch: &'a [Operation]) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        Box::pin(async move {
            // A batch is answered only once its lines are on disk, as a
            // service answers once it has committed. Batches sent together
            // (up to `concurrency`) write their lines first and share one
            // sync: the yield lets the others write theirs before it.
            let (outcomes, end) = self.write_now(batch)?;
            if let Some(end) = end {
                tokio::task::yield_now().await;
                self.sync_to(end)?;
            }
            Ok(outcomes)
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Listing, BatchError>> {
        Box::pin(async move {
            // Read afresh: a listing shows the outbox as it is now.
            let members = self.load(|attributes, _| attributes)?;
            let members = members
                .present
                .into_values()
                .map(|(attributes, invite_id)| Observed {
                    attributes,
                    remote: RemoteIds { invite_id, user_id: None, timestamp_ms: None },
                    active: true,
                })
                .collect();
            // The outbox holds everything memberctl sent, so every
            // membership attribute is observed.
            let fields = vec![
                "name",
                "first_name",
                "last_name",
                "phone",
                "roles",
                "plans",
                "groups",
                "primary_group",
                "positions",
                "manager_id",
            ];
            Ok(Listing { members, fields, ..Listing::default() })
        })
    }
}

/// The built-in `sandbox` provider type.
pub struct SandboxType;

/// The registry's handle on the `sandbox` type.
pub static TYPE: SandboxType = SandboxType;

impl super::ProviderType for SandboxType {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn own_settings(&self) -> &'static [&'static str] {
        &["outbox"]
    }

    fn uses_network(&self) -> bool {
        false
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities::ALL
    }

    fn uses(&self, _catalog: super::CatalogKind) -> bool {
        true
    }

    fn check_id(&self, id: &str) -> Option<&'static str> {
        id.trim().is_empty().then_some("a non-empty id")
    }

    fn member_fields(&self) -> super::MemberFields {
        super::MemberFields {
            names: super::NameFields::Separate,
            phone: true,
            manager_id: true,
            existing_user: true,
            note: true,
            direct_add: true,
        }
    }

    fn console(&self) -> &'static str {
        "the sandbox outbox"
    }

    fn build(
        &self,
        settings: &ProviderSettings,
        _env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Box<dyn Provider>, super::ProviderError> {
        Ok(Box::new(Sandbox::new(settings.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::Sandbox;
    use crate::attributes::Attributes;
    use crate::provider::{Operation, Outcome, Provider, ProviderSettings};

    fn invite(email: &str) -> Operation {
        Operation::invite("sandbox", Attributes { email: email.to_owned(), ..Attributes::default() })
    }

    fn syncs(sandbox: &Sandbox) -> u64 {
        sandbox.live.lock().expect("poisoned").as_ref().map_or(0, |live| live.syncs)
    }

    // #13: batches sent together share one sync of the outbox, and each is
    // answered only once its lines are synced.
    /// A sandbox provider's settings, as loaded from a config, writing to
    /// `outbox`.
    fn settings(dir: &std::path::Path, outbox: &std::path::Path) -> ProviderSettings {
        let yaml = format!(
            "version: 1\nproviders:\n  sandbox:\n    type: sandbox\n    outbox: {}\nmembers: []\n",
            outbox.display()
        );
        let config = crate::config::load_str(&dir.join("memberctl.yaml"), &yaml).expect("config");
        let settings: ProviderSettings = config.providers["sandbox"].clone();
        assert_eq!(settings.outbox.as_deref(), Some(outbox));
        settings
    }

    #[tokio::test]
    async fn batches_sent_together_share_one_sync() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outbox = dir.path().join("outbox.jsonl");
        let sandbox = Sandbox::new(settings(dir.path(), &outbox));
        let (one, two) = ([invite("ana@example.com")], [invite("bo@example.com")]);
        let (a, b) = tokio::join!(sandbox.send(&one), sandbox.send(&two));
        assert!(matches!(a.expect("answered")[..], [Outcome::Invited(_)]));
        assert!(matches!(b.expect("answered")[..], [Outcome::Invited(_)]));
        assert_eq!(syncs(&sandbox), 1, "one sync for both");
        let again = sandbox.send(&[invite("ana@example.com")]).await.expect("answered");
        assert!(matches!(again[..], [Outcome::Adopted { .. }]), "{again:?}");
        assert_eq!(syncs(&sandbox), 1, "an answer that wrote nothing syncs nothing");
        sandbox.send(&[invite("cy@example.com")]).await.expect("answered");
        assert_eq!(syncs(&sandbox), 2);
        let lines = std::fs::read_to_string(&outbox).expect("outbox");
        assert_eq!(lines.lines().count(), 3, "{lines}");
        let listed = sandbox.list().await.expect("listed");
        assert_eq!(listed.members.len(), 3);
    }

    // Found by a review: on a full disk the members of a batch whose lines
    // did not reach the outbox were taken as present all the same, so the
    // next send of them was answered "already exists".
    #[tokio::test]
    async fn a_batch_the_outbox_refuses_changes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sandbox = Sandbox::new(settings(dir.path(), &dir.path().join("outbox.jsonl")));
        // The outbox, as held open, is a device that is always full.
        let full = std::fs::OpenOptions::new().append(true).open("/dev/full").expect("/dev/full on Linux");
        *sandbox.live.lock().expect("poisoned") = Some(super::Live {
            members: super::Present {
                present: std::collections::HashSet::new(),
                accepted: std::collections::HashSet::new(),
            },
            file: Some(full),
            written: 0,
            synced: 0,
            broken: None,
            syncs: 0,
            sequence: 0,
        });
        for _ in 0..2 {
            let refused = sandbox.send(&[invite("ana@example.com")]).await.expect_err("a full device");
            assert!(refused.message.contains("No space left on device"), "{refused:?}");
        }
    }

    // Found by a review: a plan folds a due update into a resend, and a
    // resend to a member who accepted was answered "already exists" with
    // nothing written, so the update was recorded but never made.
    #[tokio::test]
    async fn a_resend_to_a_member_who_accepted_writes_the_new_attributes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outbox = dir.path().join("outbox.jsonl");
        let sandbox = Sandbox::new(settings(dir.path(), &outbox));
        sandbox.send(&[invite("ana@example.com")]).await.expect("invited");
        let mut lines = std::fs::read_to_string(&outbox).expect("outbox");
        lines.push_str("{\"op\":\"accept\",\"provider\":\"sandbox\",\"email\":\"ana@example.com\"}\n");
        std::fs::write(&outbox, lines).expect("accepted");
        // A new run, which reads the acceptance.
        let sandbox = Sandbox::new(settings(dir.path(), &outbox));
        let mut resend = invite("ana@example.com");
        resend.kind = crate::provider::OperationKind::Resend;
        resend.attributes.name = Some("Ana New".to_owned());
        let answer = sandbox.send(&[resend]).await.expect("answered");
        assert!(matches!(answer[..], [Outcome::Adopted { .. }]), "{answer:?}");
        let last = std::fs::read_to_string(&outbox).expect("outbox").lines().last().expect("a line").to_owned();
        assert!(last.contains("\"op\":\"update\"") && last.contains("Ana New"), "{last}");
    }

    fn invite_id(outcome: &Outcome) -> String {
        match outcome {
            Outcome::Invited(ids) => ids.invite_id.clone().expect("an invitation id"),
            other => panic!("not an invitation: {other:?}"),
        }
    }

    // Ids were `sbx-SECOND-INDEX_IN_BATCH`, so every batch answered within a
    // second handed out the same ones.
    #[tokio::test]
    async fn invitation_ids_are_unique_across_batches_and_runs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings(dir.path(), &dir.path().join("outbox.jsonl"));
        let mut ids = Vec::new();
        let first_run = Sandbox::new(settings.clone());
        for email in ["ana@example.com", "bo@example.com"] {
            ids.extend(
                first_run
                    .send(&[invite(email), invite(&format!("x.{email}"))])
                    .await
                    .expect("answered")
                    .iter()
                    .map(invite_id),
            );
        }
        // A second run reads the outbox afresh, as the next process would.
        let second_run = Sandbox::new(settings);
        ids.extend(second_run.send(&[invite("cy@example.com")]).await.expect("answered").iter().map(invite_id));
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 5, "{ids:?}");
    }
}
