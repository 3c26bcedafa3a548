//! The state in `PostgreSQL`, shared by many pipelines.
//!
//! One dedicated session holds a session advisory lock keyed by the state's
//! name and does every read and write of the run. Taking the lock increments
//! the state's `epoch`; every write checks `(serial, epoch)`, so a writer
//! whose session was killed and whose lock was taken over can never commit,
//! even though the serial it expects is still there. Each apply batch is an
//! intent row (before it is sent) and one transaction that writes its
//! outcomes and removes the intent: O(batch). A run that finds intents left
//! behind makes their addresses `uncertain`, as the file journal does.
//! `plan` reads a REPEATABLE READ snapshot and takes no lock.

// PostgreSQL has only signed integers; serials, epochs, batch numbers and
// format versions stay far below where the sign matters.
#![allow(clippy::cast_possible_wrap)]

mod read;
mod recorder;
mod schema;
mod session;
mod tls;
pub mod url;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use uuid::Uuid;

use super::backend::{Backend, Held, Location, Recorder};
use super::file::Streamed;
use super::journal::Replay;
use super::lock::host_name;
use super::{Loaded, LockInfo, Resource, State, StateError, FORMAT_VERSION};
use crate::provider::{Operation, Outcome};
use read::{corrupt, read_snapshot, stream_records, Item, Snapshot};
pub use schema::SCHEMA_VERSION;
use session::{Fail, Session};
pub use url::DatabaseUrl;

/// The advisory lock key of a state: the first 8 bytes of SHA-256 of its name.
#[must_use]
pub fn lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// A state stored in `PostgreSQL`.
pub struct PostgresBackend {
    session: Arc<Session>,
    name: String,
    /// The epoch this run's lock was taken at (none before locking).
    epoch: Option<i64>,
}

/// Commits after `body` succeeded, rolls back otherwise.
async fn finish_transaction<T>(client: &Client, body: Result<T, Fail>) -> Result<T, Fail> {
    match body {
        Ok(value) => {
            client.batch_execute("COMMIT").await?;
            Ok(value)
        }
        Err(fail) => {
            // The error that matters is the one in hand.
            client.batch_execute("ROLLBACK").await.ok();
            Err(fail)
        }
    }
}

/// One checked write: the expected `(serial, epoch)` and what changes.
struct Write {
    name: String,
    epoch: i64,
    serial: i64,
    /// The new lineage, when it changes (`state push --force`, first write).
    lineage: Option<Uuid>,
    /// Replace every record (`state push`) rather than patch.
    replace: bool,
    /// The serial to write instead of `serial + 1` (`state push`).
    set_serial: Option<i64>,
    upserts: Vec<(String, String)>,
    deletes: Vec<String>,
    /// Intents this write answers: `(epoch, batch)`.
    answered: Vec<(i64, i64)>,
    /// Who writes, for `updated_by`.
    by: &'static str,
}

impl Write {
    /// A write that patches the records of the state `name` under the lock
    /// taken at `epoch`, expecting `serial`.
    fn patch(
        name: String,
        epoch: i64,
        serial: i64,
        (upserts, deletes): (Vec<(String, String)>, Vec<String>),
        answered: Vec<(i64, i64)>,
    ) -> Self {
        Write {
            name,
            epoch,
            serial,
            lineage: None,
            replace: false,
            set_serial: None,
            upserts,
            deletes,
            answered,
            by: who(),
        }
    }
}

/// Commits `write` on the run's session and checks that the backend that
/// did it is the session's own (behind a pooler in transaction mode it may
/// not be, and the lock would not hold); answers the new serial.
fn commit_on(session: &Session, write: Write) -> Result<i64, StateError> {
    let (serial, pid) = session.call(move |client| async move { commit(&client, write).await })?;
    session.check_pid(pid).map_err(|f| session.error(f))?;
    Ok(serial)
}

/// Applies `write` in one transaction; answers the new serial and the
/// backend pid that did it.
async fn commit(client: &Client, write: Write) -> Result<(i64, i32), Fail> {
    client.batch_execute("BEGIN").await?;
    let body = async {
        let lineage = write.lineage.map(|l| l.to_string());
        let row = client
            .query_opt(
                "UPDATE memberctl.states
                    SET serial = COALESCE($7, serial + 1), updated_at = now(), updated_by = $4,
                        lineage = COALESCE($5::text::uuid, lineage), format_version = $6
                  WHERE name = $1 AND epoch = $2 AND serial = $3
              RETURNING serial, pg_backend_pid()",
                &[
                    &write.name,
                    &write.epoch,
                    &write.serial,
                    &write.by,
                    &lineage,
                    &(FORMAT_VERSION as i32),
                    &write.set_serial,
                ],
            )
            .await?;
        let Some(row) = row else {
            return Err(Fail::State(StateError::Fenced { name: write.name.clone() }));
        };
        if write.replace {
            client.execute("DELETE FROM memberctl.resources WHERE state = $1", &[&write.name]).await?;
        }
        if !write.upserts.is_empty() {
            let (addresses, records): (Vec<String>, Vec<String>) = write.upserts.iter().cloned().unzip();
            client
                .execute(
                    "INSERT INTO memberctl.resources (state, address, record)
                     SELECT $1, a, r::jsonb FROM unnest($2::text[], $3::text[]) AS t (a, r)
                     ON CONFLICT (state, address) DO UPDATE SET record = EXCLUDED.record",
                    &[&write.name, &addresses, &records],
                )
                .await?;
        }
        if !write.deletes.is_empty() {
            client
                .execute(
                    "DELETE FROM memberctl.resources WHERE state = $1 AND address = ANY($2::text[])",
                    &[&write.name, &write.deletes],
                )
                .await?;
        }
        if write.replace {
            client.execute("DELETE FROM memberctl.journal WHERE state = $1", &[&write.name]).await?;
        } else if !write.answered.is_empty() {
            let (epochs, batches): (Vec<i64>, Vec<i64>) = write.answered.iter().copied().unzip();
            client
                .execute(
                    "DELETE FROM memberctl.journal j USING unnest($2::bigint[], $3::bigint[]) AS t (e, b)
                      WHERE j.state = $1 AND j.epoch = t.e AND j.batch = t.b",
                    &[&write.name, &epochs, &batches],
                )
                .await?;
        }
        Ok((row.get::<_, i64>(0), row.get::<_, i32>(1)))
    }
    .await;
    finish_transaction(client, body).await
}

/// Who writes, for the `by` column: worked out once per process, not once
/// per recorded batch (the host name may be a file read).
fn who() -> &'static str {
    static WHO: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    WHO.get_or_init(|| format!("memberctl pid {} on {}", std::process::id(), host_name()))
}

/// The rows a state's records become, for the addresses `ops` touched.
fn rows_for(state: &State, ops: &[Operation]) -> (Vec<(String, String)>, Vec<String>) {
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    for op in ops {
        // A rename moved the record away from its old address: that row goes.
        if let Some(from) = op.renamed_from.as_ref().filter(|from| !state.resources.contains_key(*from)) {
            deletes.push(from.to_string());
        }
        match state.resources.get(&op.address) {
            Some(resource) => {
                upserts.push((op.address.to_string(), crate::state::file::record_json(resource)));
            }
            None => deletes.push(op.address.to_string()),
        }
    }
    (upserts, deletes)
}

impl PostgresBackend {
    /// Connects to the database in the environment variable `url_env`, for
    /// the state called `name`.
    pub fn connect(url_env: &str, name: &str) -> Result<Self, StateError> {
        let text = std::env::var(url_env).map_err(|_| StateError::MissingUrl { env: url_env.to_owned() })?;
        Self::connect_url(url_env, &text, name)
    }

    /// Connects to the database at `url` (which came from `url_env`, named
    /// in errors), for the state called `name`.
    pub fn connect_url(url_env: &str, url: &str, name: &str) -> Result<Self, StateError> {
        let url = DatabaseUrl::parse(url).map_err(|reason| StateError::BadUrl { env: url_env.to_owned(), reason })?;
        let session = Session::connect(url)?;
        Ok(Self { session: Arc::new(session), name: name.to_owned(), epoch: None })
    }

    /// The server process of this run's session (for tests that cut it).
    #[must_use]
    pub fn backend_pid(&self) -> i32 {
        self.session.pid()
    }

    fn state_of(snapshot: Snapshot, replay_now: &str) -> (Option<State>, Option<Replay>) {
        let Some(lineage) = snapshot.lineage else {
            return (None, None);
        };
        let mut state = State { lineage, serial: snapshot.serial as u64, resources: snapshot.resources };
        if snapshot.intents.is_empty() {
            return (Some(state), None);
        }
        let mut replay = Replay::default();
        for (_, _, ops) in &snapshot.intents {
            replay.interrupted += 1;
            for op in ops {
                let reason = "memberctl stopped before the answer was recorded".to_owned();
                state.record(op, &Outcome::Uncertain { reason }, replay_now);
                replay.uncertain.push(op.address.to_string());
            }
        }
        // The fold advances the serial once; a plan saved now still matches.
        state.serial += 1;
        (Some(state), Some(replay))
    }

    /// Who holds (or last held) the lock, from the `locks` row.
    fn holder(&self) -> Result<Option<LockInfo>, StateError> {
        let name = self.name.clone();
        self.session.call(move |client| async move {
            let row = client
                .query_opt(
                    "SELECT holder, host, pid, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                       FROM memberctl.locks WHERE state = $1",
                    &[&name],
                )
                .await?;
            Ok(row.map(|row| LockInfo {
                command: row.get(0),
                host: row.get(1),
                pid: u32::try_from(row.get::<_, i32>(2)).unwrap_or_default(),
                since: row.get(3),
            }))
        })
    }

    /// The epoch of this run's lock: writing without the lock is refused
    /// as a fenced write would be.
    fn epoch(&self) -> Result<i64, StateError> {
        self.epoch.ok_or_else(|| StateError::Fenced { name: self.name.clone() })
    }
}

/// Releases the advisory lock when the run is done with it.
struct Release {
    session: Arc<Session>,
    name: String,
    /// This run's `locks` row: its host and process id.
    host: String,
    pid: i32,
}

impl Drop for Release {
    fn drop(&mut self) {
        let (name, host, pid) = (self.name.clone(), self.host.clone(), self.pid);
        let key = lock_key(&name);
        // Closing the session releases the lock anyway; this only makes it
        // prompt and clears the "locked by" row. Only while this session
        // still holds the lock, and only this run's row: a run that lost
        // its session (and so its lock) must not clear the row of the run
        // that holds the lock now.
        // The row goes first (a run waiting for the lock would otherwise
        // take it and find this run's row as a stale holder's).
        self.session
            .call(|client| async move {
                client
                    .execute(
                        "DELETE FROM memberctl.locks WHERE state = $1 AND host = $2 AND pid = $3
                         AND EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                                     AND pid = pg_backend_pid() AND objsubid = 1
                                     AND ((classid::bigint << 32) | objid::bigint) = $4)",
                        &[&name, &host, &pid, &key],
                    )
                    .await?;
                client.execute("SELECT pg_advisory_unlock($1)", &[&key]).await?;
                Ok(())
            })
            .ok();
    }
}

impl Backend for PostgresBackend {
    fn describe(&self) -> String {
        format!("state `{}` in PostgreSQL `{}`", self.name, self.session.target())
    }

    fn location(&self) -> Option<Location> {
        Some(Location { backend: "postgres".to_owned(), name: self.name.clone() })
    }

    fn lock(&mut self, command: &str, timeout: Duration) -> Result<Held, StateError> {
        let key = lock_key(&self.name);
        let deadline = Instant::now() + timeout;
        loop {
            let pid = self.session.pid();
            let got = self.session.call(move |client| async move {
                let row = client.query_one("SELECT pg_try_advisory_lock($1), pg_backend_pid()", &[&key]).await?;
                let (got, now): (bool, i32) = (row.get(0), row.get(1));
                if now != pid {
                    return Err(Fail::State(StateError::Pooler { target: String::new(), was: pid, now }));
                }
                Ok(got)
            });
            let got = match got {
                Err(StateError::Pooler { was, now, .. }) => {
                    return Err(StateError::Pooler { target: self.session.target(), was, now })
                }
                other => other?,
            };
            if got {
                break;
            }
            if Instant::now() >= deadline {
                let holder = self.holder()?.map_or_else(|| "another memberctl run".to_owned(), |i| i.to_string());
                return Err(StateError::Locked { path: PathBuf::from(&self.name), holder });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let stale = self.holder()?;
        let (name, command, host, pid) =
            (self.name.clone(), command.to_owned(), host_name(), i32::try_from(std::process::id()).unwrap_or(-1));
        let session_pid = self.session.pid();
        let by = who();
        let epoch = self.session.call(move |client| async move {
            client.batch_execute("BEGIN").await?;
            let body = async {
                let row = client
                    .query_one(
                        "INSERT INTO memberctl.states (name, serial, epoch, format_version, updated_by)
                         VALUES ($1, 0, 1, $2, $3)
                         ON CONFLICT (name) DO UPDATE SET epoch = memberctl.states.epoch + 1
                         RETURNING epoch, pg_backend_pid()",
                        &[&name, &(FORMAT_VERSION as i32), &by],
                    )
                    .await?;
                client
                    .execute(
                        "INSERT INTO memberctl.locks (state, holder, host, pid, started_at)
                         VALUES ($1, $2, $3, $4, now())
                         ON CONFLICT (state) DO UPDATE SET holder = $2, host = $3, pid = $4, started_at = now()",
                        &[&name, &command, &host, &pid],
                    )
                    .await?;
                let now: i32 = row.get(1);
                if now != session_pid {
                    return Err(Fail::State(StateError::Pooler { target: String::new(), was: session_pid, now }));
                }
                Ok(row.get::<_, i64>(0))
            }
            .await;
            finish_transaction(&client, body).await
        });
        let release = Release {
            session: Arc::clone(&self.session),
            name: self.name.clone(),
            host: host_name(),
            pid: i32::try_from(std::process::id()).unwrap_or(-1),
        };
        let epoch = match epoch {
            Err(StateError::Pooler { was, now, .. }) => {
                return Err(StateError::Pooler { target: self.session.target(), was, now })
            }
            other => other?,
        };
        self.epoch = Some(epoch);
        Ok(Held::new(stale, Box::new(release)))
    }

    fn read_guard(&mut self, _command: &str, _timeout: Duration) -> Result<Held, StateError> {
        Ok(Held::none())
    }

    fn force_unlock(&mut self) -> Result<Option<LockInfo>, StateError> {
        let held = self.lock("state unlock", Duration::ZERO)?;
        Ok(held.stale.clone())
    }

    fn load(&mut self) -> Result<Loaded, StateError> {
        let name = self.name.clone();
        let snapshot = self.session.call(move |client| async move { read_snapshot(&client, &name).await })?;
        let (state, replay) = Self::state_of(snapshot, &crate::clock::now_rfc3339());
        Ok(Loaded { state, replay })
    }

    fn load_and_recover(&mut self) -> Result<Loaded, StateError> {
        let epoch = self.epoch()?;
        let name = self.name.clone();
        let snapshot = self.session.call(move |client| async move { read_snapshot(&client, &name).await })?;
        let serial = snapshot.serial;
        let answered: Vec<(i64, i64)> = snapshot.intents.iter().map(|(e, b, _)| (*e, *b)).collect();
        let touched: Vec<Operation> = snapshot.intents.iter().flat_map(|(_, _, ops)| ops.iter().cloned()).collect();
        let (state, replay) = Self::state_of(snapshot, &crate::clock::now_rfc3339());
        if answered.is_empty() {
            return Ok(Loaded { state, replay });
        }
        // Intents of a run that never had a state: nothing to make
        // uncertain against, only rows to clear.
        let rows = state.as_ref().map(|s| rows_for(s, &touched)).unwrap_or_default();
        let write = Write::patch(self.name.clone(), epoch, serial, rows, answered);
        let new_serial = commit_on(&self.session, write)?;
        let state = state.map(|mut s| {
            s.serial = new_serial as u64;
            s
        });
        Ok(Loaded { state, replay })
    }

    // Called from synchronous code only (`plan`), never inside a runtime:
    // it blocks on the channel the session's task fills.
    fn each_record(&mut self, sink: &mut dyn FnMut(&Resource) -> bool) -> Result<Streamed, StateError> {
        let name = self.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        // A tokio channel: the session's task waits for room without
        // blocking its thread; this (synchronous) side blocks.
        let (send, mut receive) = tokio::sync::mpsc::channel::<Item>(16);
        let stopped = Arc::clone(&stop);
        self.session.spawn(move |client| async move {
            let streamed = stream_records(&client, &name, &send, &stopped).await;
            send.send(Item::End(streamed)).await.ok();
        });
        let mut outcome = Streamed::Missing;
        let mut declined = false;
        let mut corrupted = None;
        let mut ended = None;
        while let Some(item) = receive.blocking_recv() {
            match item {
                Item::Header(None, _) => outcome = Streamed::Missing,
                Item::Header(Some(_), true) => outcome = Streamed::Fallback,
                Item::Header(Some((lineage, serial)), false) => {
                    outcome = Streamed::Done { lineage, serial: serial as u64 };
                }
                // Past a decline the state is read whole, which reports a
                // corrupt record itself.
                Item::Records(_) | Item::Corrupt(_) if declined => {}
                Item::Records(batch) => {
                    for resource in &batch {
                        if !sink(resource) {
                            // Drain what is in flight so the snapshot ends
                            // before the session is used again.
                            declined = true;
                            stop.store(true, Ordering::Relaxed);
                            outcome = Streamed::Fallback;
                            break;
                        }
                    }
                }
                Item::Corrupt(detail) => corrupted = Some(detail),
                Item::End(result) => {
                    ended = Some(result);
                    break;
                }
            }
        }
        if let Some(detail) = corrupted {
            return Err(self.session.error(corrupt(&self.name, detail)));
        }
        match ended {
            Some(Ok(())) => Ok(outcome),
            Some(Err(fail)) => Err(self.session.error(fail)),
            None => Err(StateError::Database {
                target: self.session.target(),
                detail: "the database task stopped without an answer".to_owned(),
            }),
        }
    }

    fn recorder(&mut self, state: State) -> Result<Recorder, StateError> {
        let epoch = self.epoch()?;
        let name = self.name.clone();
        let stored = self.session.call(move |client| async move {
            let row = client.query_one("SELECT lineage::text FROM memberctl.states WHERE name = $1", &[&name]).await?;
            Ok(row.get::<_, Option<String>>(0))
        })?;
        recorder::begin(Arc::clone(&self.session), self.name.clone(), epoch, stored, state)
    }

    fn write(&mut self, state: &State) -> Result<u64, StateError> {
        let epoch = self.epoch()?;
        let name = self.name.clone();
        let serial = self.session.call(move |client| async move {
            let row = client.query_one("SELECT serial FROM memberctl.states WHERE name = $1", &[&name]).await?;
            Ok(row.get::<_, i64>(0))
        })?;
        let upserts: Vec<(String, String)> =
            state.resources.values().map(|r| (r.address.to_string(), crate::state::file::record_json(r))).collect();
        let bytes = upserts.iter().map(|(a, r)| a.len() + r.len()).sum::<usize>() as u64;
        let write = Write {
            name: self.name.clone(),
            epoch,
            serial,
            lineage: Some(state.lineage),
            replace: true,
            set_serial: Some(state.serial as i64),
            upserts,
            deletes: Vec::new(),
            answered: Vec::new(),
            by: who(),
        };
        commit_on(&self.session, write)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::{lock_key, rows_for};
    use crate::address::Address;
    use crate::attributes::Attributes;
    use crate::provider::{Operation, OperationKind, Outcome, RemoteIds};
    use crate::state::State;

    // A rename moves the record: the row under the old address is deleted,
    // or the next load finds the member at both addresses.
    #[test]
    fn a_rename_deletes_the_old_row_and_writes_the_new_one() {
        let old = Address::new("directory", "ada@example.com");
        let op = |email: &str, renamed_from: Option<Address>| Operation {
            address: Address::new("directory", email),
            kind: OperationKind::Invite,
            attributes: Attributes { email: email.to_owned(), ..Attributes::default() },
            repeat: false,
            remote: RemoteIds::default(),
            renamed_from,
        };
        let mut state = State::new();
        state.record(&op("ada@example.com", None), &Outcome::Invited(RemoteIds::default()), "2026-01-01T00:00:00Z");
        let rename = Operation { kind: OperationKind::Update, ..op("ada.l@example.com", Some(old.clone())) };
        state.record(&rename, &Outcome::Updated, "2026-01-02T00:00:00Z");
        let (upserts, deletes) = rows_for(&state, &[rename]);
        assert_eq!(upserts.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["directory/ada.l@example.com"]);
        assert_eq!(deletes, [old.to_string()]);
    }

    // Regression: #11: the key is the first 8 bytes of SHA-256 of the name,
    // big-endian, as a signed integer (values from Python's hashlib).
    #[test]
    fn the_lock_key_is_the_first_eight_bytes_of_the_names_sha256() {
        assert_eq!(lock_key("acme-community"), -2_198_973_981_761_636_489);
        assert_eq!(lock_key("held"), -4_463_654_036_948_952_177);
    }
}
