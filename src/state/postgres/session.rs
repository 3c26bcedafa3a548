//! The one database session a run uses, driven from synchronous code.
//!
//! The session holds the advisory lock, so it must be the same connection
//! for every read and write (no pool). The state layer is synchronous and is
//! called from inside apply's runtime, where nothing may block on a future:
//! the session runs its futures on a runtime of its own (one worker thread)
//! and the caller waits on a plain channel. Nothing on that thread logs, so
//! it never contends for the stderr lock the CLI holds.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::{Client, NoTls};

use super::url::{DatabaseUrl, SslMode};
use super::{schema, tls};
use crate::state::StateError;

/// Why a database step failed.
pub(super) enum Fail {
    /// The driver's error (its text may quote the user: redacted before use).
    Db(tokio_postgres::Error),
    /// Anything else, already a state error.
    State(StateError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(error: tokio_postgres::Error) -> Self {
        Fail::Db(error)
    }
}

impl From<StateError> for Fail {
    fn from(error: StateError) -> Self {
        Fail::State(error)
    }
}

/// A connected session.
pub(super) struct Session {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    client: Arc<Client>,
    /// The server process behind the session, to notice a pooler that
    /// swaps it.
    pub pid: i32,
    url: DatabaseUrl,
}

impl Session {
    /// Connects, refuses plaintext to a remote host unless asked for, and
    /// creates or migrates the schema.
    pub fn connect(url: DatabaseUrl) -> Result<Session, StateError> {
        let target = url.target();
        let unreachable = |detail: String| StateError::Database { target: target.clone(), detail };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("memberctl-postgres")
            .enable_all()
            .build()
            .map_err(|e| unreachable(format!("cannot start the database runtime: {e}")))?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&url.host)
            .port(url.port)
            .dbname(&url.dbname)
            .application_name("memberctl")
            .connect_timeout(url.connect_timeout)
            // The default idle time before keepalives is two hours: a NAT
            // would drop a quiet session (and the lock) long before.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .options("-c client_min_messages=warning");
        let user = url.user.as_ref().map_or_else(
            || std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "postgres".to_owned()),
            |u| u.expose_secret().to_owned(),
        );
        config.user(&user);
        if let Some(password) = &url.password {
            config.password(password.expose_secret());
        }
        config.ssl_mode(driver_mode(&url));
        let tls = tls::client_config(&url).map_err(&unreachable)?;
        let connected = runtime.block_on(async move {
            match tls {
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    tokio::spawn(async move { connection.await.ok() });
                    Ok::<_, tokio_postgres::Error>(client)
                }
                Some(tls) => {
                    let (client, connection) =
                        config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls)).await?;
                    tokio::spawn(async move { connection.await.ok() });
                    Ok(client)
                }
            }
        });
        let client = Arc::new(connected.map_err(|e| unreachable(url.redact(&describe(&e))))?);
        let mut session = Session { runtime: Some(runtime), client, pid: 0, url };
        session.pid = session.call(|client| async move {
            let row = client.query_one("SELECT pg_backend_pid()", &[]).await?;
            Ok(row.get::<_, i32>(0))
        })?;
        session.call(|client| async move { schema::migrate(&client).await })?;
        // Behind a transaction-pooling proxy the migration (or its check)
        // already ran on another server process: refuse before anything else.
        let pid = session.pid;
        session
            .call(move |client| async move {
                let row = client.query_one("SELECT pg_backend_pid()", &[]).await?;
                let now: i32 = row.get(0);
                if now == pid {
                    Ok(())
                } else {
                    Err(Fail::State(StateError::Pooler { target: String::new(), was: pid, now }))
                }
            })
            .map_err(|error| match error {
                StateError::Pooler { was, now, .. } => StateError::Pooler { target: session.target(), was, now },
                other => other,
            })?;
        Ok(session)
    }

    /// Host and database name: all a message may show.
    pub fn target(&self) -> String {
        self.url.target()
    }

    /// Runs `step` on the session and waits for it.
    pub fn call<T, F, Fut>(&self, step: F) -> Result<T, StateError>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, Fail>> + Send + 'static,
        T: Send + 'static,
    {
        let future = step(Arc::clone(&self.client));
        let (done, answer) = mpsc::channel();
        self.runtime().spawn(async move {
            // The caller waits for this; it is gone only if it panicked.
            done.send(future.await).ok();
        });
        match answer.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(fail)) => Err(self.error(fail)),
            Err(_) => Err(StateError::Database {
                target: self.target(),
                detail: "the database task stopped without an answer".to_owned(),
            }),
        }
    }

    /// Starts `task` on the session without waiting (streaming reads).
    pub fn spawn<Fut>(&self, task: impl FnOnce(Arc<Client>) -> Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.runtime().spawn(task(Arc::clone(&self.client)));
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives as long as the session")
    }

    /// A state error for `fail`, never quoting the user or password.
    pub fn error(&self, fail: Fail) -> StateError {
        match fail {
            Fail::State(error) => error,
            Fail::Db(error) => {
                StateError::Database { target: self.target(), detail: self.url.redact(&describe(&error)) }
            }
        }
    }

    /// Refuses a session whose server process changed: a transaction-pooling
    /// proxy hands each transaction to whichever server is free, so the
    /// session advisory lock would guard nothing.
    pub fn check_pid(&self, now: i32) -> Result<(), Fail> {
        if now == self.pid {
            Ok(())
        } else {
            Err(Fail::State(StateError::Pooler { target: self.target(), was: self.pid, now }))
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which is not allowed inside
        // apply's runtime; closing the connection needs no waiting.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the driver is told: plaintext to another machine must be asked
/// for by name (`sslmode=disable`); `prefer` falls back to plaintext only
/// on loopback.
fn driver_mode(url: &DatabaseUrl) -> DriverSslMode {
    match url.sslmode {
        SslMode::Disable => DriverSslMode::Disable,
        SslMode::Prefer if url.is_loopback() => DriverSslMode::Prefer,
        _ => DriverSslMode::Require,
    }
}

/// The driver's message with its causes.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    if let Some(db) = error.as_db_error() {
        text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            write!(text, " ({detail})").expect("writing to a String cannot fail");
        }
    } else {
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                write!(text, ": {cause_text}").expect("writing to a String cannot fail");
            }
            source = cause.source();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::SslMode as DriverSslMode;

    use super::{driver_mode, DatabaseUrl};

    // Regression: #11: plaintext to a host that is not loopback needs an
    // explicit `sslmode=disable`.
    #[test]
    fn plaintext_to_another_machine_must_be_asked_for() {
        let mode = |url: &str| driver_mode(&DatabaseUrl::parse(url).expect("parses"));
        assert_eq!(mode("postgres://db.example.com/d"), DriverSslMode::Require);
        assert_eq!(mode("postgres://db.example.com/d?sslmode=prefer"), DriverSslMode::Require);
        assert_eq!(mode("postgres://db.example.com/d?sslmode=disable"), DriverSslMode::Disable);
        assert_eq!(mode("postgres://127.0.0.1/d"), DriverSslMode::Prefer);
        assert_eq!(mode("postgres://localhost/d"), DriverSslMode::Prefer);
        assert_eq!(mode("postgres://localhost/d?sslmode=require"), DriverSslMode::Require);
    }
}
