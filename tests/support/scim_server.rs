//! The real SCIM 2.0 server that the SCIM provider is tested against:
//! scim2-server 0.8.3 (a Python package), installed by `scripts/test.sh` into
//! `target/scim-venv` and found through `SCIM2_SERVER_BIN`. One process serves
//! a whole test binary; each test gets its own tenant on it.
//!
//! What scim2-server 0.8.3 does, read from its source and checked against a
//! running one (these facts drive the client's design):
//!
//! - **CLI**: `--port N` (default 8080), `--hostname` (default 127.0.0.1),
//!   `--bearer-token T` (repeatable; without it every request is accepted),
//!   `--service-provider-config FILE` (the whole `ServiceProviderConfig`
//!   document, replacing the default), `--tenant NAME` / `--dynamic-tenants`,
//!   `--reverse-proxy` (trust `X-Forwarded-Host`/`-Proto`/`-Port`/`-Prefix`
//!   when building URLs). It prints `Serving SCIM on http://HOST:PORT/v2`
//!   once listening, then one line per request on stderr.
//! - **HTTP/1.0** (Python's `wsgiref`, one thread per request): every answer
//!   closes its connection, so nothing is kept alive.
//! - **Tenants** are a path prefix (RFC 7644 §6.1): `/{tenant}/v2/Users`.
//!   With `--dynamic-tenants` any first request to `/{tenant}/…` creates an
//!   empty tenant; `v2` is not a tenant name, so `/v2/Users` is 404
//!   "Unknown tenant". The `/v2` segment is optional (`/{tenant}/Users`
//!   works too), and a `.scim` suffix is stripped.
//! - **Auth**: a missing or wrong bearer token is 401 with
//!   `WWW-Authenticate: Bearer realm="SCIM"`, except on
//!   `/ServiceProviderConfig`, which needs no token (RFC 7643 §5).
//! - **Media type**: a body must be `application/scim+json` or
//!   `application/json`; anything else (or none) is 415.
//! - **Create**: `POST /Users` is 201 with the resource, `Location`, and an
//!   `ETag`. `userName` is unique case-insensitively: a duplicate is 409 with
//!   `scimType: "uniqueness"`. Ids are 32 lowercase hex digits (uuid4).
//! - **PATCH** answers **204 No Content** (with the new `ETag`, no body);
//!   only with `attributes=`/`excludedAttributes=` in the query does it
//!   answer 200 with the (projected) resource. A PATCH that changes nothing
//!   keeps the version (`add` of `roles: []` is such a no-op). An empty
//!   `Operations` list is 400. `remove` with a `members[value eq "ID"]`
//!   path works on groups; `add` of `roles` with a value filter remove works
//!   on users. A PATCH or DELETE of an unknown id is 404.
//! - **`ETag`s** are supported and announced: weak, `W/"N"`, N drawn from one
//!   counter per tenant (so versions are not per resource). `ETag` headers on
//!   GET/POST/PATCH answers, and `meta.version` in bodies. `If-Match` with a
//!   stale version is 412; `If-None-Match` on GET is 304.
//! - **Groups**: `members` are listed on `GET /Groups` (list and single) as
//!   `{"value": ID}` only (no `display`, no `$ref`). A User's `groups` is
//!   never filled in: memberships can only be read from the groups.
//! - **Listing**: index paging; `startIndex` defaults to 1; without `count`
//!   every match is returned up to `filter.maxResults` (1000), and a larger
//!   `count` is cut to 1000. The default configuration has no `pagination`
//!   section, so no other page size applies. Resources are ordered by id
//!   (random), not by creation, unless `sortBy` is given (sorting is
//!   supported). `count=0` gives `totalResults` only. Past the end, an empty
//!   `Resources` list.
//! - **Filters**: supported (`eq`, `sw`, `co`, `and`, `or`, ...); `userName eq`
//!   compares case-insensitively.
//! - **Bulk**: announced with `maxOperations: 1000`, `maxPayloadSize:
//!   1048576`; `bulkId:` references resolve (a group PATCH can add a user
//!   created earlier in the same request). Each result's `status` is a
//!   **string** ("201", "200", "409"), with `location` and `version`; a failed
//!   operation carries a SCIM error in `response`. With `failOnErrors: N`,
//!   operations after the N-th error are not run and are absent from the
//!   response. A PATCH in bulk answers "200". With bulk turned off in the
//!   configuration, `POST /Bulk` is 501; too many operations or too large a
//!   body is 413.
//! - **Errors** are SCIM error documents whose `status` is a string.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

/// A service provider configuration with bulk turned off.
pub const BULK_OFF_CONFIG: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scim/service-provider-config-bulk-off.json");

/// A service provider configuration with small bulk limits (`maxOperations`
/// 3, `maxPayloadSize` 4096), for chunking tests.
pub const SMALL_BULK_CONFIG: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scim/service-provider-config-small-bulk.json");

/// Where `scripts/test.sh` installs the server, when `SCIM2_SERVER_BIN` is unset.
const VENV_BINARY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/scim-venv/bin/scim2-server");

/// Where the servers' logs go: `target/tmp`, kept after the run for diagnosis.
const LOG_DIR: &str = env!("CARGO_TARGET_TMPDIR");
const LOG_PREFIX: &str = "scim2-server-";

/// How long a server may take to start listening (Python and pydantic start
/// slowly on a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts the server, then keeps it alive for as long as its standard input
/// stays open. The test binary holds the write end of that pipe, so when the
/// binary exits, however it exits, the pipe closes and the watchdog kills the
/// server: no server outlives its tests. The wrapper itself exits with the
/// server, which tells a server that died at start from one still starting.
const WRAPPER: &str = r#"exec 3<&0
"$0" "$@" </dev/null 3<&- &
server=$!
{ read -r _ <&3; kill "$server" 2>/dev/null; } &
watchdog=$!
exec 3<&-
wait "$server"
status=$?
kill "$watchdog" 2>/dev/null
exit "$status""#;

/// One running scim2-server process. Dropping it stops the process; the
/// shared ones live until the test binary exits.
pub struct ScimServer {
    origin: String,
    token: String,
    log: PathBuf,
    wrapper: Child,
    /// The write end of the wrapper's stdin: closing it stops the server.
    lifeline: Option<ChildStdin>,
}

impl ScimServer {
    /// The server shared by every test of this binary, started on first use,
    /// with the default configuration (bulk, `ETag`s, filters and sorting supported).
    pub fn shared() -> &'static ScimServer {
        static SERVER: OnceLock<ScimServer> = OnceLock::new();
        SERVER.get_or_init(|| ScimServer::start(None))
    }

    /// A shared server whose configuration turns bulk off ([`BULK_OFF_CONFIG`]).
    pub fn shared_bulk_off() -> &'static ScimServer {
        static SERVER: OnceLock<ScimServer> = OnceLock::new();
        SERVER.get_or_init(|| ScimServer::start(Some(Path::new(BULK_OFF_CONFIG))))
    }

    /// Starts a server of its own, with `--service-provider-config FILE` when
    /// given, on a free loopback port, with a random bearer token and
    /// `--dynamic-tenants`, and waits until it listens.
    ///
    /// Panics when the server is not installed (run `scripts/test.sh`) or
    /// does not start: a missing server fails the tests, it never skips them.
    pub fn start(service_provider_config: Option<&Path>) -> ScimServer {
        let binary = server_binary(std::env::var_os("SCIM2_SERVER_BIN").map(PathBuf::from));
        let token = format!("scim-test-{}", uuid::Uuid::new_v4().simple());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            let mut server = Self::spawn(&binary, port, &token, service_provider_config);
            match server.wait_until_listening(port) {
                Ok(()) => return server,
                // A port found free can be taken before the server binds it:
                // another port is tried then.
                Err(failure) if failure.contains("Address already in use") && attempts < 3 => {}
                Err(failure) => panic!("scim2-server ({}) did not start: {failure}", binary.display()),
            }
        }
    }

    fn spawn(binary: &Path, port: u16, token: &str, service_provider_config: Option<&Path>) -> ScimServer {
        static CLEAN_UP: Once = Once::new();
        CLEAN_UP.call_once(remove_logs_of_finished_runs);
        let log = Path::new(LOG_DIR).join(format!("{LOG_PREFIX}{}-{port}.log", std::process::id()));
        let log_file = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let log_for_stderr = log_file.try_clone().expect("clone the log file handle");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg(binary)
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", token])
            // Tests also reach it through the fault proxy, which names itself
            // in `X-Forwarded-Host` so that locations point at the proxy.
            .args(["--dynamic-tenants", "--reverse-proxy"]);
        if let Some(config) = service_provider_config {
            command.arg("--service-provider-config").arg(config);
        }
        let mut wrapper = command
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(log_file)
            .stderr(log_for_stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn sh to run {}: {e}", binary.display()));
        let lifeline = wrapper.stdin.take();
        ScimServer { origin: format!("http://127.0.0.1:{port}"), token: token.to_owned(), log, wrapper, lifeline }
    }

    /// Waits for the "Serving SCIM" line and an accepted connection.
    fn wait_until_listening(&mut self, port: u16) -> Result<(), String> {
        let banner = format!("Serving SCIM on http://127.0.0.1:{port}/");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.wrapper.try_wait().expect("poll the scim2-server wrapper") {
                return Err(format!("it exited with {status}; its log:\n{}", self.log()));
            }
            if self.log().contains(&banner) && TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("it did not listen within {START_TIMEOUT:?}; its log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`: the root, above the tenants.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The bearer token the server accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A new, empty tenant on this server.
    pub fn tenant(&self) -> ScimTenant {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        // The counter keeps names unique within the run; the random part
        // keeps a test's tenant recognisable in the server log.
        let name = format!("t{}-{:08x}", NEXT.fetch_add(1, Ordering::Relaxed), fastrand::u32(..));
        ScimTenant { base_url: format!("{}/{name}/v2", self.origin), name, token: self.token.clone() }
    }

    /// What the server logged so far (one line per request), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        // EOF on the wrapper's stdin makes its watchdog kill the server.
        drop(self.lifeline.take());
        // An error means the wrapper was already reaped: nothing is left to stop.
        self.wrapper.wait().ok();
    }
}

/// One test's own tenant on a running server.
#[derive(Clone, Debug)]
pub struct ScimTenant {
    base_url: String,
    name: String,
    token: String,
}

impl ScimTenant {
    /// A new tenant on the shared server ([`ScimServer::shared`]).
    #[allow(clippy::new_without_default)] // every call makes a different tenant
    pub fn new() -> Self {
        ScimServer::shared().tenant()
    }

    /// The SCIM base URL, `http://127.0.0.1:PORT/TENANT/v2`: a provider's `base_url`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The tenant's name: the first path segment.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bearer token the server accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `base_url` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// The scim2-server executable: `SCIM2_SERVER_BIN` when set, else the one
/// `scripts/test.sh` installs. Panics, saying how to install it, when it is
/// missing: the SCIM tests never skip.
pub fn server_binary(from_env: Option<PathBuf>) -> PathBuf {
    let (binary, origin) = match from_env {
        Some(path) => (path, "SCIM2_SERVER_BIN"),
        None => (PathBuf::from(VENV_BINARY), "the default, as SCIM2_SERVER_BIN is unset"),
    };
    assert!(
        binary.is_file(),
        "scim2-server not found at {} ({origin}); the SCIM tests need it: run `scripts/test.sh`, \
         which installs it into target/scim-venv and then runs the tests",
        binary.display()
    );
    binary
}

/// Removes the logs of earlier test runs (`scim2-server-PID-PORT.log` whose
/// PID no longer runs), so they do not pile up; a run's own logs stay for
/// whoever reads a failure.
fn remove_logs_of_finished_runs() {
    let Ok(entries) = std::fs::read_dir(LOG_DIR) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(LOG_PREFIX)).and_then(|rest| rest.split_once('-'));
        if let Some((pid, _)) = pid {
            if !Path::new("/proc").join(pid).exists() {
                // Another run may be removing it at the same moment: either way it is gone.
                std::fs::remove_file(entry.path()).ok();
            }
        }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("bind 127.0.0.1:0").port()
}
