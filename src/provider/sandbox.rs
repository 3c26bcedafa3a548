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
struct Members {
    /// Invited or added, and not removed: the last attributes recorded and
    /// the invitation id, by normalised email.
    present: BTreeMap<String, (Attributes, Option<String>)>,
    /// Accepted their invitation.
    accepted: HashSet<String>,
}

/// The sandbox client.
pub struct Sandbox {
    settings: ProviderSettings,
    /// Loaded from the outbox on first use.
    members: Mutex<Option<Members>>,
}

impl Sandbox {
    /// Builds a client; the outbox is read on first send.
    #[must_use]
    pub fn new(settings: ProviderSettings) -> Self {
        Self { settings, members: Mutex::new(None) }
    }

    fn outbox(&self) -> PathBuf {
        self.settings.outbox.clone().unwrap_or_else(|| PathBuf::from("memberctl.outbox.jsonl"))
    }

    fn error(&self, what: &str, err: &std::io::Error) -> BatchError {
        BatchError {
            uncertain: false,
            fatal: true,
            message: format!("sandbox `{}`: cannot {what} `{}`: {err}", self.settings.name, self.outbox().display()),
            hint: Some("check that the outbox's directory exists and is writable".to_owned()),
        }
    }

    fn load(&self) -> Result<Members, BatchError> {
        let path = self.outbox();
        let mut members = Members::default();
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(members),
            Err(err) => return Err(self.error("read the outbox", &err)),
        };
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|err| self.error("read the outbox", &err))?;
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
                    members.present.insert(email, (attributes, id));
                }
                OutboxOp::Accept => {
                    members
                        .present
                        .entry(email.clone())
                        .or_insert_with(|| (Attributes { email: record.email.clone(), ..Attributes::default() }, None));
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

    fn send_now(&self, batch: &[Operation]) -> Result<Vec<Outcome>, BatchError> {
        let mut guard = self.members.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(self.load()?);
        }
        let members = guard.as_mut().expect("loaded above");
        let mut lines = String::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        let at = crate::clock::now_rfc3339();
        for (index, op) in batch.iter().enumerate() {
            let email = normalize_email(&op.attributes.email);
            let outcome = match op.kind {
                OperationKind::Invite if members.present.contains_key(&email) => {
                    Outcome::Adopted { message: "Email already exists".to_owned(), remote: RemoteIds::default() }
                }
                OperationKind::Resend if members.accepted.contains(&email) => Outcome::Adopted {
                    message: "Email already exists (the invitation was accepted)".to_owned(),
                    remote: RemoteIds::default(),
                },
                OperationKind::Invite | OperationKind::Resend => {
                    let ids = RemoteIds {
                        invite_id: Some(format!("sbx-{}-{index}", at.replace([':', '-'], ""))),
                        user_id: None,
                        timestamp_ms: None,
                    };
                    if op.attributes.method == Method::Direct {
                        Outcome::Added(ids)
                    } else {
                        Outcome::Invited(ids)
                    }
                }
                OperationKind::Update if members.present.contains_key(&email) => Outcome::Updated,
                OperationKind::Remove if members.present.contains_key(&email) => Outcome::Removed,
                OperationKind::Update | OperationKind::Remove => {
                    Outcome::Failed { reason: "not a member of the sandbox".to_owned() }
                }
            };
            if matches!(outcome, Outcome::Invited(_) | Outcome::Added(_) | Outcome::Updated | Outcome::Removed) {
                let invite_id = match &outcome {
                    Outcome::Invited(ids) | Outcome::Added(ids) => ids.invite_id.clone(),
                    _ => None,
                };
                if op.kind == OperationKind::Remove {
                    members.present.remove(&email);
                    members.accepted.remove(&email);
                } else {
                    let id = invite_id.clone().or_else(|| members.present.get(&email).and_then(|(_, id)| id.clone()));
                    members.present.insert(email, (op.attributes.clone(), id));
                }
                let record = OutboxRecord {
                    op: op.kind.into(),
                    provider: self.settings.name.clone(),
                    email: op.attributes.email.clone(),
                    at: at.clone(),
                    attributes: op.attributes.clone(),
                    invite_id,
                };
                lines.push_str(&serde_json::to_string(&record).expect("outbox records serialise"));
                lines.push('\n');
            }
            outcomes.push(outcome);
        }
        if !lines.is_empty() {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.outbox())
                .map_err(|err| self.error("open the outbox", &err))?;
            file.write_all(lines.as_bytes()).map_err(|err| self.error("write the outbox", &err))?;
            file.sync_data().map_err(|err| self.error("sync the outbox", &err))?;
        }
        Ok(outcomes)
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
        Box::pin(async move { self.send_now(batch) })
    }

    fn list(&self) -> BoxFuture<'_, Result<Listing, BatchError>> {
        Box::pin(async move {
            // Read afresh: a listing shows the outbox as it is now.
            let members = self.load()?;
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
            Ok(Listing { members, fields, notes: Vec::new() })
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
