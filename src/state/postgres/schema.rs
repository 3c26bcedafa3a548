//! The `memberctl` schema: created and migrated by memberctl on first use.
//!
//! Migrations are additive and run under a transaction-scoped advisory lock,
//! so first runs that start together migrate once and the others wait. The
//! version is kept in the schema's comment (`memberctl schema N`), leaving
//! the four tables as the design names them.

use tokio_postgres::Client;

use super::session::Fail;
use crate::state::StateError;

/// The schema this memberctl reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The advisory lock key that serialises migrations (`memberctl` in ASCII).
const MIGRATION_LOCK: i64 = 0x006d_656d_6265_7263;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["
    CREATE SCHEMA IF NOT EXISTS memberctl;
    CREATE TABLE memberctl.states (
        name text PRIMARY KEY,
        lineage uuid,
        serial bigint NOT NULL DEFAULT 0,
        epoch bigint NOT NULL DEFAULT 0,
        format_version integer NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by text NOT NULL
    );
    CREATE TABLE memberctl.resources (
        state text NOT NULL REFERENCES memberctl.states (name) ON DELETE CASCADE,
        address text NOT NULL,
        record jsonb NOT NULL,
        PRIMARY KEY (state, address)
    );
    CREATE TABLE memberctl.journal (
        state text NOT NULL REFERENCES memberctl.states (name) ON DELETE CASCADE,
        epoch bigint NOT NULL,
        batch bigint NOT NULL,
        provider text NOT NULL,
        intent jsonb NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (state, epoch, batch)
    );
    CREATE TABLE memberctl.locks (
        state text PRIMARY KEY,
        holder text NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now()
    );
"];

/// The schema version the database is at (0: no schema yet).
async fn version(client: &Client) -> Result<u32, Fail> {
    let row = client
        .query_opt("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'memberctl'", &[])
        .await?;
    let Some(row) = row else { return Ok(0) };
    let comment: Option<String> = row.get(0);
    // A schema that someone created by hand holds nothing of ours yet.
    Ok(comment.as_deref().and_then(|c| c.strip_prefix("memberctl schema ")).and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Creates or migrates the schema; refuses one migrated by a newer memberctl.
pub(super) async fn migrate(client: &Client) -> Result<(), Fail> {
    let newer = |found: u32| Fail::State(StateError::NewerSchema { found, supported: SCHEMA_VERSION });
    match version(client).await? {
        found if found == SCHEMA_VERSION => return Ok(()),
        found if found > SCHEMA_VERSION => return Err(newer(found)),
        _ => {}
    }
    client.batch_execute("BEGIN").await?;
    let migrated = async {
        client.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        // Another first run may have migrated while this one waited.
        let found = version(client).await?;
        if found > SCHEMA_VERSION {
            return Err(newer(found));
        }
        for migration in &MIGRATIONS[found as usize..] {
            client.batch_execute(migration).await?;
        }
        client.batch_execute(&format!("COMMENT ON SCHEMA memberctl IS 'memberctl schema {SCHEMA_VERSION}'")).await?;
        Ok(())
    }
    .await;
    match migrated {
        Ok(()) => Ok(client.batch_execute("COMMIT").await?),
        Err(fail) => {
            // The error that matters is the one above.
            client.batch_execute("ROLLBACK").await.ok();
            Err(fail)
        }
    }
}
