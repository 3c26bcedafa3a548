//! Reading a state from the database: a REPEATABLE READ snapshot whole, or
//! its records streamed in address order while a plan is made from them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_postgres::Client;
use uuid::Uuid;

use super::finish_transaction;
use super::session::Fail;
use crate::provider::Operation;
use crate::state::{Resource, StateError, FORMAT_VERSION};

/// A state's records as text, in the order of their addresses' bytes (the
/// order a state file holds them in, whatever the database's collation).
const RECORDS_IN_ORDER: &str =
    "SELECT record::text FROM memberctl.resources WHERE state = $1 ORDER BY address COLLATE \"C\"";

/// The state's row and records, as read in one snapshot.
pub(super) struct Snapshot {
    pub(super) lineage: Option<Uuid>,
    pub(super) serial: i64,
    pub(super) resources: BTreeMap<crate::address::Address, Resource>,
    /// Intents with no outcome: `(epoch, batch, operations)`. A state with
    /// no lineage yet has none: the lineage is written before any intent.
    pub(super) intents: Vec<(i64, i64, Vec<Operation>)>,
}

pub(super) fn corrupt(name: &str, detail: String) -> Fail {
    Fail::State(StateError::Corrupt { path: PathBuf::from(format!("postgres state `{name}`")), detail })
}

/// The lineage and serial of a `states` row read as `lineage::text,
/// serial, format_version`: a newer format or an unreadable lineage is an
/// error, never "no state" (a plan would then invite everyone).
fn header_of(row: &tokio_postgres::Row, name: &str) -> Result<(Option<Uuid>, i64), Fail> {
    let format_version: i32 = row.get(2);
    if format_version > FORMAT_VERSION as i32 {
        return Err(Fail::State(StateError::NewerFormat {
            path: PathBuf::from(format!("postgres state `{name}`")),
            found: format_version as u32,
        }));
    }
    let lineage: Option<String> = row.get(0);
    let lineage = lineage.map(|l| l.parse::<Uuid>().map_err(|e| corrupt(name, format!("lineage: {e}")))).transpose()?;
    Ok((lineage, row.get::<_, i64>(1)))
}

pub(super) async fn read_snapshot(client: &Client, name: &str) -> Result<Snapshot, Fail> {
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let read = async {
        let row = client
            .query_opt("SELECT lineage::text, serial, format_version FROM memberctl.states WHERE name = $1", &[&name])
            .await?;
        let (lineage, serial) = match row {
            Some(row) => header_of(&row, name)?,
            None => (None, 0),
        };
        // Row by row: the rows of a large state are never all held as text.
        let mut resources = BTreeMap::new();
        let rows = client.query_raw(RECORDS_IN_ORDER, [name]).await?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = futures_util::StreamExt::next(&mut rows).await {
            let text: String = row?.get(0);
            let resource = crate::state::file::parse_record(&text).map_err(|e| corrupt(name, e))?;
            resources.insert(resource.address.clone(), resource);
        }
        let mut intents = Vec::new();
        for row in client
            .query(
                "SELECT epoch, batch, intent::text FROM memberctl.journal WHERE state = $1 ORDER BY epoch, batch",
                &[&name],
            )
            .await?
        {
            let text: String = row.get(2);
            let ops: Vec<Operation> = serde_json::from_str(&text).map_err(|e| corrupt(name, e.to_string()))?;
            intents.push((row.get(0), row.get(1), ops));
        }
        Ok(Snapshot { lineage, serial, resources, intents })
    }
    .await;
    finish_transaction(client, read).await
}

/// What a streaming read hands to the caller's thread.
pub(super) enum Item {
    /// The state's lineage and serial (none: no state yet), and whether
    /// intents are pending (then the state must be read whole).
    Header(Option<(Uuid, i64)>, bool),
    /// The next records, parsed on the session's thread (so that parsing
    /// overlaps with planning), a batch at a time (each hand-over wakes the
    /// planning thread).
    Records(Vec<Resource>),
    /// A record that does not parse, and why.
    Corrupt(String),
    /// The end of the reading.
    End(Result<(), Fail>),
}

/// Records handed over at a time by [`stream_records`].
const RECORDS_PER_BATCH: usize = 256;

/// Streams a state's records to `send` in address order, from one
/// REPEATABLE READ snapshot, until `stop` is raised.
pub(super) async fn stream_records(
    client: &Client,
    name: &str,
    send: &tokio::sync::mpsc::Sender<Item>,
    stop: &AtomicBool,
) -> Result<(), Fail> {
    use futures_util::StreamExt;
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let body = async {
        let row = client
            .query_opt("SELECT lineage::text, serial, format_version FROM memberctl.states WHERE name = $1", &[&name])
            .await?;
        let header = match row {
            Some(row) => match header_of(&row, name)? {
                (Some(lineage), serial) => Some((lineage, serial)),
                (None, _) => None,
            },
            None => None,
        };
        let pending = client
            .query_one("SELECT count(*) FROM memberctl.journal WHERE state = $1", &[&name])
            .await?
            .get::<_, i64>(0)
            > 0;
        let go_on = header.is_some() && !pending;
        // The caller is blocked on this channel, on another thread.
        send.send(Item::Header(header, pending)).await.ok();
        if !go_on {
            return Ok(());
        }
        let rows = client.query_raw(RECORDS_IN_ORDER, [name]).await?;
        let mut rows = std::pin::pin!(rows);
        let mut batch = Vec::with_capacity(RECORDS_PER_BATCH);
        while let Some(row) = rows.next().await {
            let row = row?;
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let record: &str = row.get(0);
            match crate::state::file::parse_record(record) {
                Ok(resource) => batch.push(resource),
                Err(e) => {
                    send.send(Item::Corrupt(e)).await.ok();
                    return Ok(());
                }
            }
            if batch.len() == RECORDS_PER_BATCH
                && send
                    .send(Item::Records(std::mem::replace(&mut batch, Vec::with_capacity(RECORDS_PER_BATCH))))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            send.send(Item::Records(batch)).await.ok();
        }
        Ok(())
    }
    .await;
    finish_transaction(client, body).await
}
