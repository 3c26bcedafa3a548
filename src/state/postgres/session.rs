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
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
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

/// How often an idle session sends a heartbeat query.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// A connected session.
pub(super) struct Session {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// The connection; replaced by [`Session::reconnect`].
    client: Mutex<Arc<Client>>,
    /// The server process behind the session, to notice a pooler that
    /// swaps it.
    pid: AtomicI32,
    url: DatabaseUrl,
}

impl Session {
    /// Connects, refuses plaintext to a remote host unless asked for, and
    /// creates or migrates the schema.
    pub fn connect(url: DatabaseUrl) -> Result<Session, StateError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("memberctl-postgres")
            .enable_all()
            .build()
            .map_err(|e| StateError::Database {
                target: url.target(),
                detail: format!("cannot start the database runtime: {e}"),
            })?;
        let client = open(&runtime, &url)?;
        let session =
            Session { runtime: Some(runtime), client: Mutex::new(Arc::new(client)), pid: AtomicI32::new(0), url };
        session.start()?;
        session.heartbeat();
        Ok(session)
    }

    /// Sends a trivial query every [`HEARTBEAT`] while the session lives:
    /// traffic keeps a NAT from dropping a quiet session (and with it the
    /// lock), and a dead connection is noticed between batches. Its answer
    /// is not needed (inside an aborted transaction it is an error); the
    /// driver marks the client closed when the connection dies.
    fn heartbeat(&self) {
        let runtime = self.runtime();
        let client = Arc::downgrade(&self.client.lock().expect("poisoned"));
        runtime.spawn(async move {
            let mut client = client;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let Some(live) = client.upgrade() else { return };
                live.simple_query("SELECT 1").await.ok();
                client = Arc::downgrade(&live);
            }
        });
    }

    /// Learns the server process, migrates, and checks that the process
    /// stayed the same: behind a transaction-pooling proxy the migration (or
    /// its check) ran on another one.
    fn start(&self) -> Result<(), StateError> {
        let backend_pid = |client: Arc<Client>| async move {
            let row = client.query_one("SELECT pg_backend_pid()", &[]).await?;
            Ok::<_, Fail>(row.get::<_, i32>(0))
        };
        let pid = self.call(backend_pid)?;
        self.pid.store(pid, Ordering::SeqCst);
        self.call(|client| async move { schema::migrate(&client).await })?;
        let now = self.call(backend_pid)?;
        self.check_pid(now).map_err(|fail| self.error(fail))
    }

    /// Replaces a lost connection with a new one (the advisory lock went
    /// with the old one: the caller takes it again).
    pub fn reconnect(&self) -> Result<(), StateError> {
        let client = open(self.runtime(), &self.url)?;
        *self.client.lock().expect("poisoned") = Arc::new(client);
        self.start()?;
        self.heartbeat();
        Ok(())
    }

    /// Whether the connection is gone (the server went away, or the
    /// session was terminated).
    pub fn is_closed(&self) -> bool {
        self.client.lock().expect("poisoned").is_closed()
    }

    /// The server process of the session.
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
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
        let client = Arc::clone(&self.client.lock().expect("poisoned"));
        let future = step(client);
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
        let client = Arc::clone(&self.client.lock().expect("poisoned"));
        self.runtime().spawn(task(client));
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
        let was = self.pid();
        if now == was {
            Ok(())
        } else {
            Err(Fail::State(StateError::Pooler { target: self.target(), was, now }))
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

/// Opens a connection for `url` on `runtime`.
fn open(runtime: &tokio::runtime::Runtime, url: &DatabaseUrl) -> Result<Client, StateError> {
    let unreachable = |detail: String| StateError::Database { target: url.target(), detail };
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
    if let Some(user) = &url.user {
        config.user(user.expose_secret());
    }
    if let Some(password) = &url.password {
        config.password(password.expose_secret());
    }
    config.ssl_mode(driver_mode(url));
    let tls = tls::client_config(url).map_err(unreachable)?;
    let (done, answer) = mpsc::channel();
    // The driver's `connect_timeout` bounds the TCP connect only; a server
    // that accepts the connection and never answers held the run forever.
    // The whole handshake gets twice that.
    let budget = url.connect_timeout * 2;
    // Spawned, not `block_on`: this may run inside apply's runtime.
    runtime.spawn(async move {
        let connecting = async move {
            match tls {
                None => config.connect(NoTls).await.map(|(client, connection)| {
                    tokio::spawn(async move { connection.await.ok() });
                    client
                }),
                Some(tls) => config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls)).await.map(
                    |(client, connection)| {
                        tokio::spawn(async move { connection.await.ok() });
                        client
                    },
                ),
            }
        };
        let connected = tokio::time::timeout(budget, connecting).await;
        // The caller waits for this; it is gone only if it panicked.
        done.send(connected).ok();
    });
    match answer.recv() {
        Ok(Ok(Ok(client))) => Ok(client),
        Ok(Ok(Err(error))) => Err(unreachable(url.redact(&describe(&error)))),
        Ok(Err(_)) => Err(unreachable(format!(
            "the server took the connection but did not answer within {} s (`connect_timeout` in the URL sets half of that)",
            budget.as_secs()
        ))),
        Err(_) => Err(unreachable("the connection task stopped without an answer".to_owned())),
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
