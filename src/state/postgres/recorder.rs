//! An apply recorded in the database, batch by batch: an intent row
//! before each batch is sent, one transaction for its outcomes, and a way
//! back when the session is lost mid-run (reconnect, or a rescue journal).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::session::{Fail, Session};
use super::{commit_on, finish_transaction, lock_key, rows_for, Write};
use crate::provider::{Operation, Outcome};
use crate::state::backend::{RecordBatches, Recorder};
use crate::state::rescue::{Rescue, RescuedBatch, RESCUE_VERSION};
use crate::state::{State, StateError};

/// How long a run tries to get a lost database session back before it
/// gives up and writes a rescue journal (`MEMBERCTL_DB_RECONNECT_SECS`
/// overrides it, for tests).
const RECONNECT_FOR: Duration = Duration::from_secs(30);

fn reconnect_for() -> Duration {
    std::env::var("MEMBERCTL_DB_RECONNECT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(RECONNECT_FOR, Duration::from_secs)
}

/// A recorder for an apply under the lock taken at `epoch`; `stored_lineage`
/// is the lineage the database holds for `name`, if any.
pub(super) fn begin(
    session: Arc<Session>,
    name: String,
    epoch: i64,
    stored_lineage: Option<String>,
    state: State,
) -> Result<Recorder, StateError> {
    let mut recorder = PostgresRecorder {
        session,
        name,
        epoch,
        serial: state.serial as i64,
        lineage_written: stored_lineage.is_some_and(|l| l == state.lineage.to_string()),
        state,
        next_batch: 0,
        open: HashMap::new(),
        bytes: 0,
        unsaved: Vec::new(),
    };
    // A first run writes the lineage before its first intent, so that a
    // crash leaves intents a later run can replay onto that lineage.
    if !recorder.lineage_written {
        recorder.commit(&[], Vec::new())?;
    }
    Ok(Recorder::from_backend(Box::new(recorder)))
}

/// Records an apply in the database, batch by batch.
struct PostgresRecorder {
    session: Arc<Session>,
    name: String,
    epoch: i64,
    /// The serial the database holds, as this run last wrote it.
    serial: i64,
    lineage_written: bool,
    state: State,
    next_batch: i64,
    /// Batches sent and not answered: the epoch their intent was written
    /// under, and their operations.
    open: HashMap<u64, (i64, Vec<Operation>)>,
    bytes: u64,
    /// Answers that could not be recorded: the database went away.
    unsaved: Vec<RescuedBatch>,
}

impl PostgresRecorder {
    /// Gets the session back after the connection was lost, for a bounded
    /// time, and takes the lock again. Answers whether the write in flight
    /// when it was lost had committed (the serial moved by one and the
    /// intents it answered are gone).
    fn regain(&mut self, answered: &[(i64, i64)]) -> Result<bool, StateError> {
        let deadline = Instant::now() + reconnect_for();
        let mut pause = Duration::from_millis(250);
        loop {
            match self.session.reconnect() {
                Ok(()) => break,
                Err(error) if Instant::now() + pause >= deadline => return Err(error),
                Err(_) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(4));
                }
            }
        }
        let (name, key, epoch, serial) = (self.name.clone(), lock_key(&self.name), self.epoch, self.serial);
        let answered = answered.to_vec();
        let (new_epoch, landed) = self.session.call(move |client| async move {
            let fenced = || Fail::State(StateError::Fenced { name: name.clone() });
            let got: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await?.get(0);
            if !got {
                return Err(fenced());
            }
            client.batch_execute("BEGIN").await?;
            let body = async {
                let row = client
                    .query_one("SELECT epoch, serial FROM memberctl.states WHERE name = $1 FOR UPDATE", &[&name])
                    .await?;
                let (now_epoch, now_serial): (i64, i64) = (row.get(0), row.get(1));
                // Another run held the lock in between: it owns what follows.
                if now_epoch != epoch {
                    return Err(fenced());
                }
                let (epochs, batches): (Vec<i64>, Vec<i64>) = answered.iter().copied().unzip();
                let pending: i64 = client
                    .query_one(
                        "SELECT count(*) FROM memberctl.journal j JOIN unnest($2::bigint[], $3::bigint[]) AS t (e, b)
                             ON j.epoch = t.e AND j.batch = t.b WHERE j.state = $1",
                        &[&name, &epochs, &batches],
                    )
                    .await?
                    .get(0);
                let landed = match now_serial - serial {
                    0 => false,
                    1 if pending == 0 && !answered.is_empty() => true,
                    _ => return Err(fenced()),
                };
                let row = client
                    .query_one(
                        "UPDATE memberctl.states SET epoch = epoch + 1 WHERE name = $1 RETURNING epoch",
                        &[&name],
                    )
                    .await?;
                Ok((row.get::<_, i64>(0), landed))
            }
            .await;
            finish_transaction(&client, body).await
        })?;
        self.epoch = new_epoch;
        if landed {
            self.serial += 1;
            self.state.serial = self.serial as u64;
        }
        Ok(landed)
    }

    fn commit(&mut self, ops: &[Operation], answered: Vec<(i64, i64)>) -> Result<(), StateError> {
        match self.try_commit(ops, answered.clone()) {
            Err(StateError::Database { .. }) if self.session.is_closed() => {
                if self.regain(&answered)? {
                    return Ok(());
                }
                self.try_commit(ops, answered)
            }
            other => other,
        }
    }

    /// Writes a batch's intent, if this run still holds the lock.
    fn try_intent(&self, batch: i64, provider: &str, intent: &str) -> Result<(), StateError> {
        let (name, epoch, provider, intent) = (self.name.clone(), self.epoch, provider.to_owned(), intent.to_owned());
        let pid = self.session.call(move |client| async move {
            let row = client
                .query_opt(
                    "INSERT INTO memberctl.journal (state, epoch, batch, provider, intent)
                     SELECT $1, $2, $3, $4, $5::text::jsonb
                      WHERE EXISTS (SELECT 1 FROM memberctl.states WHERE name = $1 AND epoch = $2)
                  RETURNING pg_backend_pid()",
                    &[&name, &epoch, &batch, &provider, &intent],
                )
                .await?;
            row.map(|row| row.get::<_, i32>(0)).ok_or(Fail::State(StateError::Fenced { name }))
        })?;
        self.session.check_pid(pid).map_err(|f| self.session.error(f))
    }

    fn try_commit(&mut self, ops: &[Operation], answered: Vec<(i64, i64)>) -> Result<(), StateError> {
        let rows = rows_for(&self.state, ops);
        self.bytes += rows.0.iter().map(|(a, r)| a.len() + r.len()).sum::<usize>() as u64;
        let write = Write {
            lineage: (!self.lineage_written).then_some(self.state.lineage),
            ..Write::patch(self.name.clone(), self.epoch, self.serial, rows, answered)
        };
        let serial = commit_on(&self.session, write)?;
        self.serial = serial;
        self.state.serial = serial as u64;
        self.lineage_written = true;
        Ok(())
    }
}

impl RecordBatches for PostgresRecorder {
    fn intent(&mut self, provider: &str, ops: &[Operation]) -> Result<u64, StateError> {
        if let Some(first) = self.unsaved.first() {
            let detail = format!("the state database was lost at {}; nothing more is sent", first.at);
            return Err(StateError::Database { target: self.session.target(), detail });
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        let intent = serde_json::to_string(ops).expect("operations serialise");
        self.bytes += intent.len() as u64;
        let written = match self.try_intent(batch, provider, &intent) {
            Err(StateError::Database { .. }) if self.session.is_closed() => {
                self.regain(&[])?;
                self.try_intent(batch, provider, &intent)
            }
            other => other,
        };
        written?;
        let id = batch as u64;
        self.open.insert(id, (self.epoch, ops.to_vec()));
        Ok(id)
    }

    fn outcome(&mut self, batch: u64, ops: &[Operation], outcomes: &[Outcome]) -> Result<(), StateError> {
        let at = crate::clock::now_rfc3339();
        let (epoch, provider) = match self.open.remove(&batch) {
            Some((epoch, ops)) => (epoch, ops.first().map(|op| op.address.provider().to_owned()).unwrap_or_default()),
            None => (self.epoch, String::new()),
        };
        let rescue = |unsaved: &mut Vec<RescuedBatch>| {
            unsaved.push(RescuedBatch { provider, at: at.clone(), ops: ops.to_vec(), outcomes: outcomes.to_vec() });
        };
        // Once the database is lost, the rest of the answers go to the
        // rescue journal at once.
        if let Some(first) = self.unsaved.first() {
            let reason = format!("the state database was lost at {}", first.at);
            rescue(&mut self.unsaved);
            return Err(StateError::Database { target: self.session.target(), detail: reason });
        }
        for (op, outcome) in ops.iter().zip(outcomes) {
            self.state.record(op, outcome, &at);
        }
        let committed = self.commit(ops, vec![(epoch, batch as i64)]);
        if committed.is_err() {
            rescue(&mut self.unsaved);
        }
        committed
    }

    fn abandon(&mut self, batch: u64, reason: &str) -> Result<(), StateError> {
        let Some((_, ops)) = self.open.get(&batch).cloned() else { return Ok(()) };
        let outcomes = vec![Outcome::Uncertain { reason: reason.to_owned() }; ops.len()];
        self.outcome(batch, &ops, &outcomes)
    }

    fn state(&self) -> &State {
        &self.state
    }

    fn journal_bytes(&self) -> u64 {
        self.bytes
    }

    fn finish(mut self: Box<Self>) -> Result<(State, u64), StateError> {
        if !self.unsaved.is_empty() {
            // Batches still open stay as intents in the database: the next
            // run makes them uncertain.
            let rescue = Rescue {
                memberctl_rescue: RESCUE_VERSION,
                state: self.name.clone(),
                lineage: self.state.lineage,
                serial: Some(self.serial as u64),
                batches: std::mem::take(&mut self.unsaved),
            };
            let (path, document) = rescue.save()?;
            return Err(StateError::Rescued { target: self.session.target(), path, document });
        }
        let now = crate::clock::now_rfc3339();
        let mut open: Vec<(u64, (i64, Vec<Operation>))> = self.open.drain().collect();
        open.sort_by_key(|(batch, _)| *batch);
        if !open.is_empty() {
            let mut touched = Vec::new();
            let mut answered = Vec::new();
            for (batch, (epoch, ops)) in open {
                for op in &ops {
                    let reason = "the apply was interrupted before the answer arrived".to_owned();
                    self.state.record(op, &Outcome::Uncertain { reason }, &now);
                }
                answered.push((epoch, batch as i64));
                touched.extend(ops);
            }
            self.commit(&touched, answered)?;
        }
        Ok((self.state, self.bytes))
    }
}
