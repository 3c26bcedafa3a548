//! A real, throw-away `PostgreSQL` 15 cluster for the state-backend tests.
//!
//! One cluster serves a whole test binary; each test gets its own database.
//! It runs Debian's binaries from `/usr/lib/postgresql/15/bin` (installed by
//! `scripts/test.sh`). `initdb` refuses to run as root, so as root the
//! cluster runs as the `postgres` user (`runuser`), in a temp dir it owns.
//! The server listens on a free loopback port with `trust` authentication,
//! except for the role [`SECRET_USER`], which must give its password (for
//! the secret-scan tests). TLS is on, with a server certificate for
//! `localhost` from a CA made for the run ([`Postgres::ca`]); a second CA
//! ([`Postgres::other_ca`]) signed nothing the server shows. Like the SCIM server, it runs under a wrapper that
//! stops it (and removes its data) when the test binary's end of the
//! wrapper's stdin closes, however the binary exits.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where Debian's postgresql-15 puts its binaries.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A role that logs in with a password only.
pub const SECRET_USER: &str = "secretive";
/// Its password (tests scan every output for it).
pub const SECRET_PASSWORD: &str = "Pg-S3cr3t-hunter2-Xq";

const LOG_DIR: &str = env!("CARGO_TARGET_TMPDIR");

/// Runs the server until stdin closes, then stops it (fast shutdown) and
/// removes the cluster's directory. `$1` is the directory, the rest the
/// server command. The signal goes to the postmaster itself (its pid is
/// the first line of `postmaster.pid`): `runuser` does not pass SIGINT on.
const WRAPPER: &str = r#"exec 3<&0
dir=$1; shift
"$@" </dev/null 3<&- &
server=$!
{ read -r _ <&3; kill -INT "$(head -n 1 "$dir/data/postmaster.pid")" 2>/dev/null || kill "$server"; } &
watchdog=$!
exec 3<&-
wait "$server"
status=$?
kill "$watchdog" 2>/dev/null
rm -rf "$dir"
exit "$status""#;

/// The running cluster.
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    wrapper: Child,
    lifeline: Option<ChildStdin>,
    /// Started with `pg_ctl` (a cluster of one test's own, which it stops
    /// and starts again), rather than run by the wrapper.
    controlled: bool,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The shell words that run `program` as the `postgres` user when we are root.
fn owner_prefix(program: &str) -> String {
    if is_root() {
        format!("runuser -u postgres -- {program}")
    } else {
        program.to_owned()
    }
}

/// `program ARGS`, as the `postgres` user when we are root.
fn as_owner(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn run(mut command: Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Postgres {
    /// The cluster shared by this test binary, started on first use.
    pub fn shared() -> &'static Postgres {
        static SERVER: OnceLock<Postgres> = OnceLock::new();
        SERVER.get_or_init(Postgres::start)
    }

    /// Makes a cluster's directory (owned by the server's user), its
    /// certificates and its data directory. Panics when `PostgreSQL` 15 is
    /// not installed: the tests fail, they never skip.
    fn init() -> (PathBuf, PathBuf) {
        let initdb = format!("{BIN}/initdb");
        assert!(
            Path::new(&initdb).exists(),
            "PostgreSQL 15 is not installed ({initdb} is missing): run scripts/test.sh, which installs it"
        );
        let dir = tempfile::Builder::new().prefix("memberctl-pg-").tempdir().expect("temp dir").keep();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&dir);
                    c
                },
                "chown the cluster directory",
            );
        }
        make_certificates(&dir);
        let data = dir.join("data");
        let mut init = as_owner(&initdb);
        init.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        run(init, "initdb");
        // The password role first: the first matching line decides.
        let hba = format!(
            "local all all trust\nhost all {SECRET_USER} 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n"
        );
        let hba_path = data.join("pg_hba.conf");
        let mut write = as_owner("sh");
        write.arg("-c").arg(format!("printf '%s' \"$0\" > '{}'", hba_path.display())).arg(&hba);
        run(write, "write pg_hba.conf");
        (dir, data)
    }

    /// Starts the shared cluster.
    fn start() -> Postgres {
        let (dir, data) = Self::init();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            let mut server = Self::spawn(&dir, &data, port);
            match server.wait_until_ready() {
                Ok(()) => {
                    server.psql(
                        "postgres",
                        &format!("CREATE ROLE {SECRET_USER} LOGIN SUPERUSER PASSWORD '{SECRET_PASSWORD}'"),
                    );
                    return server;
                }
                Err(failure) if failure.contains("could not bind") && attempts < 3 => {}
                Err(failure) => panic!("PostgreSQL did not start: {failure}"),
            }
        }
    }

    fn spawn(dir: &Path, data: &Path, port: u16) -> Postgres {
        let log = Path::new(LOG_DIR).join(format!("postgres-{}-{port}.log", std::process::id()));
        let log_file = File::create(&log).expect("create the server log");
        let log_err = log_file.try_clone().expect("clone the log handle");
        let mut server = as_owner(&format!("{BIN}/postgres"));
        server.arg("-D").arg(data).args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"]).arg(dir);
        for setting in ["fsync=off", "max_connections=200", "shared_buffers=16MB", "ssl=on"] {
            server.args(["-c", setting]);
        }
        server.arg("-c").arg(format!("ssl_cert_file={}", dir.join("server.crt").display()));
        server.arg("-c").arg(format!("ssl_key_file={}", dir.join("server.key").display()));
        let mut command = Command::new("sh");
        command.arg("-c").arg(WRAPPER).arg("wrapper").arg(dir).arg(server.get_program()).args(server.get_args());
        let mut wrapper = command
            .stdin(Stdio::piped())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .expect("spawn the PostgreSQL wrapper");
        let lifeline = wrapper.stdin.take();
        Postgres { port, dir: dir.to_owned(), log, wrapper, lifeline, controlled: false }
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.wrapper.try_wait().expect("poll the wrapper") {
                return Err(format!("it exited with {status}; its log:\n{}", self.log()));
            }
            if TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
                let ready = Command::new(format!("{BIN}/pg_isready"))
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ready {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("it was not ready within a minute; its log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A cluster of the caller's own, started with `pg_ctl` so that it can
    /// be stopped and started again; a watchdog stops it and removes it
    /// when the test binary exits, if the test did not drop it first.
    pub fn own() -> Postgres {
        let (dir, _) = Self::init();
        let port = free_port();
        let log = dir.join("server.log");
        let mut server = Postgres {
            port,
            dir: dir.clone(),
            log,
            wrapper: Command::new("true").spawn().expect("a placeholder"),
            lifeline: None,
            controlled: true,
        };
        server.wrapper.wait().ok();
        let stop = format!(
            "{} stop -m immediate -D '{}' >/dev/null 2>&1",
            owner_prefix(&format!("{BIN}/pg_ctl")),
            dir.join("data").display()
        );
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!("read -r _; {stop}; rm -rf '{}'", dir.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the cluster's watchdog");
        server.lifeline = watchdog.stdin.take();
        server.wrapper = watchdog;
        server.start_again();
        server
    }

    /// `pg_ctl ACTION` for an own cluster.
    fn pg_ctl(&self, args: &[&str]) {
        assert!(self.controlled, "only an own cluster is stopped and started");
        let mut command = as_owner(&format!("{BIN}/pg_ctl"));
        command.arg("-D").arg(self.dir.join("data")).args(args);
        run(command, &format!("pg_ctl {}", args.join(" ")));
    }

    /// Stops an own cluster at once, as a crash would (`-m immediate`).
    pub fn stop_immediately(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    /// Starts an own cluster (again), and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -h 127.0.0.1 -k {} -c fsync=off -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            self.port,
            self.dir.display(),
            self.dir.join("server.crt").display(),
            self.dir.join("server.key").display()
        );
        let log = self.log.display().to_string();
        self.pg_ctl(&["start", "-w", "-l", &log, "-o", &options]);
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `sql` in `database` as the superuser; answers the rows, `|`-separated.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut command = Command::new(format!("{BIN}/psql"));
        command
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", database, "-c", sql]);
        run(command, &format!("psql `{sql}`"))
    }

    /// A new, empty database for one test.
    pub fn database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!("t{}_{:08x}", NEXT.fetch_add(1, Ordering::Relaxed), fastrand::u32(..));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// A trust-authenticated URL for `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A URL for `database` with [`SECRET_USER`] and `password`.
    pub fn url_with_password(&self, database: &str, password: &str) -> String {
        format!("postgres://{SECRET_USER}:{password}@127.0.0.1:{}/{database}", self.port)
    }

    /// The directory of the cluster (the unix socket is there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA (PEM) that signed the server's certificate (for `localhost`).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that signed nothing the server shows.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }
}

/// Makes two CAs and a server certificate for `localhost` (and no IP
/// address) from the first, with `openssl`, in `dir`; the server's key is
/// readable by its owner only, as `PostgreSQL` demands.
fn make_certificates(dir: &Path) {
    let script = r#"set -e
cd "$1"
key="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $key -keyout ca.key -out ca.pem -days 2 -subj /CN=memberctl-test-ca 2>/dev/null
openssl req -x509 $key -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=memberctl-other-ca 2>/dev/null
openssl req $key -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost
basicConstraints=CA:FALSE
' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext 2>/dev/null
chmod 600 server.key
chmod 644 ca.pem other-ca.pem server.crt
"#;
    let mut command = as_owner("sh");
    command.arg("-c").arg(script).arg("certificates").arg(dir);
    run(command, "make the test certificates with openssl");
}

impl Drop for Postgres {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        // An error means the wrapper was already reaped.
        self.wrapper.wait().ok();
    }
}
