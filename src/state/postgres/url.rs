//! The database URL, parsed by memberctl before the driver sees it.
//!
//! tokio-postgres knows only `sslmode=disable|prefer|require` and rejects
//! `sslrootcert`; libpq users expect `verify-ca`, `verify-full` and
//! `sslrootcert` to work. The URL also holds a password: only
//! [`DatabaseUrl::target`] (host and database name) is ever shown.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// How the connection is protected, as libpq names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext.
    Disable,
    /// TLS when the server offers it, unverified (plaintext only to loopback).
    Prefer,
    /// TLS, unverified.
    Require,
    /// TLS, the chain verified against `sslrootcert`.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

/// A parsed `postgres://` URL.
pub struct DatabaseUrl {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name (never shown).
    pub user: Option<SecretString>,
    /// Password (never shown).
    pub password: Option<SecretString>,
    /// Database name.
    pub dbname: String,
    /// TLS mode.
    pub sslmode: SslMode,
    /// CA certificates (PEM) for the `verify-*` modes.
    pub sslrootcert: Option<PathBuf>,
    /// Connection timeout.
    pub connect_timeout: Duration,
}

fn decode(text: &str) -> String {
    // `form_urlencoded` would turn `+` into a space, which a URL's user info
    // does not; protect it first.
    form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl DatabaseUrl {
    /// Parses `text`. Errors never repeat the URL (it may hold a password).
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("postgres://")
            .or_else(|| text.strip_prefix("postgresql://"))
            .ok_or("the URL must start with `postgres://` or `postgresql://`")?;
        // The user info first: up to the last `@` before the query (so a
        // password with an unencoded `/` or `@` stays in it), else up to an
        // `@` with no `/` before it (an unencoded `?` in the password); an
        // `@` in the path or the query is not one.
        let before_query = rest.split('?').next().unwrap_or(rest);
        let at = before_query.rfind('@').or_else(|| rest.find('@').filter(|&at| !rest[..at].contains('/')));
        let (userinfo, rest) = match at {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((user, password)) => (Some(decode(user)), Some(decode(password))),
                None => (Some(decode(info)), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or("an IPv6 host lacks its `]`")?;
            (host.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err("the URL names no host".to_owned());
        }
        if host.contains(',') {
            return Err("several hosts in one URL are not supported".to_owned());
        }
        let port = match port {
            // Not quoted: in a URL that is not percent-encoded, what stands
            // where the port goes may be part of the password.
            Some(port) => port.parse::<u16>().map_err(|_| "the URL's port is not a number".to_owned())?,
            None => 5432,
        };
        let dbname = decode(path);
        if dbname.is_empty() {
            return Err("the URL names no database (`postgres://HOST/DATABASE`)".to_owned());
        }
        let mut url = DatabaseUrl {
            host,
            port,
            user: user.filter(|u| !u.is_empty()).map(SecretString::from),
            password: password.map(SecretString::from),
            dbname,
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            connect_timeout: Duration::from_secs(10),
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "sslmode" => {
                    url.sslmode = match &*value {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "`sslmode={other}` is not one of disable, prefer, require, verify-ca, verify-full"
                            ))
                        }
                    }
                }
                "sslrootcert" => url.sslrootcert = Some(PathBuf::from(&*value)),
                "connect_timeout" => {
                    let seconds = value.parse::<u64>().map_err(|_| "`connect_timeout` is not a number of seconds")?;
                    url.connect_timeout = Duration::from_secs(seconds.max(1));
                }
                "user" => url.user = Some(SecretString::from(value.into_owned())),
                "password" => url.password = Some(SecretString::from(value.into_owned())),
                other => return Err(format!("URL parameter `{other}` is not supported")),
            }
        }
        // As libpq picks the user a URL does not name. Kept here, not where
        // the connection is made, so that `redact` hides it too (the
        // server's refusal quotes it).
        if url.user.is_none() {
            let user =
                std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "postgres".to_owned());
            url.user = Some(SecretString::from(user));
        }
        if matches!(url.sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && url.sslrootcert.is_none() {
            return Err("`sslmode=verify-ca` and `verify-full` need `sslrootcert=PATH` (the CA's PEM file)".to_owned());
        }
        Ok(url)
    }

    /// What messages may show: host and database name.
    #[must_use]
    pub fn target(&self) -> String {
        format!("{}/{}", self.host, self.dbname)
    }

    /// Whether the host is this machine (plaintext is then allowed without
    /// saying so).
    #[must_use]
    pub fn is_loopback(&self) -> bool {
        // A path is a Unix socket: local by construction.
        self.host.starts_with('/') || crate::url_policy::is_loopback_host(&self.host)
    }

    /// Removes the user and password from a driver message, which may
    /// quote them (`password authentication failed for user "..."`).
    #[must_use]
    pub fn redact(&self, message: &str) -> String {
        let mut message = message.to_owned();
        if let Some(password) = self.password.as_ref().map(ExposeSecret::expose_secret).filter(|p| !p.is_empty()) {
            message = message.replace(password, "…");
        }
        // The server quotes a user name (`for user "ann"`, `role "ann"`).
        // Only quoted: a user is often a common word (`postgres`, `root`)
        // that the rest of a message may hold.
        if let Some(user) = self.user.as_ref().map(ExposeSecret::expose_secret).filter(|u| !u.is_empty()) {
            message = message.replace(&format!("\"{user}\""), "\"…\"");
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::{DatabaseUrl, SslMode};

    #[test]
    fn libpq_ssl_modes_and_the_root_certificate_are_understood() {
        let url = DatabaseUrl::parse(
            "postgres://ann:p%40ss+word@db.example.com:6543/members?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        )
        .expect("parses");
        assert_eq!((url.host.as_str(), url.port, url.dbname.as_str()), ("db.example.com", 6543, "members"));
        assert_eq!(url.sslmode, SslMode::VerifyFull);
        assert_eq!(url.password.as_ref().map(|p| p.expose_secret().to_owned()).as_deref(), Some("p@ss+word"));
        assert_eq!(url.target(), "db.example.com/members");
        assert!(!url.is_loopback());
        assert_eq!(url.redact("failed for user \"ann\" with p@ss+word"), "failed for user \"…\" with …");
    }

    #[test]
    fn errors_never_repeat_the_url() {
        for bad in [
            "mysql://u:hunter2@h/d",
            "postgres://u:hunter2@/d",
            "postgres://u:hunter2@h:x/d",
            "postgres://u:hunter2@h",
            "postgres://u:hunter2@h/d?sslmode=hunter2x",
            "postgres://u:hunter2@h/d?sslmode=verify-ca",
        ] {
            let Err(message) = DatabaseUrl::parse(bad) else { panic!("{bad} parsed") };
            assert!(!message.contains("hunter2 ") && !message.contains(":hunter2"), "{message}");
        }
        assert!(DatabaseUrl::parse("postgres://[::1]:5433/d").expect("v6").is_loopback());
    }

    // Found by a review: a password with a `/` or `?` that is not
    // percent-encoded was cut there, and its rest named as the port or host.
    #[test]
    fn a_password_with_unencoded_separators_stays_in_the_user_info() {
        for (text, password) in [
            ("postgres://ann:Sekr1t/Yq9@127.0.0.1:55437/audit", "Sekr1t/Yq9"),
            ("postgres://ann:Sekr1t?Yq9@127.0.0.1:55437/audit", "Sekr1t?Yq9"),
            ("postgres://ann:a@b@127.0.0.1:55437/audit", "a@b"),
        ] {
            let url = DatabaseUrl::parse(text).expect("parses");
            assert_eq!(url.password.as_ref().map(|p| p.expose_secret().to_owned()).as_deref(), Some(password));
            assert_eq!(url.target(), "127.0.0.1/audit");
        }
        let Err(message) = DatabaseUrl::parse("postgres://ann:5432/Sekr1tX@127.0.0.1:x/audit") else {
            panic!("parsed")
        };
        assert!(!message.contains("Sekr1tX") && !message.contains("ann"), "{message}");
        // An `@` in the query or the path is not the user info's.
        let url = DatabaseUrl::parse("postgres://127.0.0.1:1/app?user=ann&password=ab@c:Secr3t").expect("parses");
        assert_eq!(url.password.as_ref().map(|p| p.expose_secret().to_owned()).as_deref(), Some("ab@c:Secr3t"));
        assert_eq!(url.target(), "127.0.0.1/app");
        let url = DatabaseUrl::parse("postgres://h/d?sslmode=verify-ca&sslrootcert=/certs/a@b.pem").expect("parses");
        assert_eq!(url.sslrootcert.as_deref(), Some(std::path::Path::new("/certs/a@b.pem")));
        for bad in ["postgres://u:Sekr1t@h:Sekr2t/d", "postgres://h:1/d?password=x@y:Sekr3t&sslmode=no"] {
            let Err(message) = DatabaseUrl::parse(bad) else { panic!("{bad} parsed") };
            assert!(!message.contains("Sekr"), "{message}");
        }
    }

    #[test]
    fn the_user_libpq_would_pick_is_redacted_too() {
        let url = DatabaseUrl::parse("postgres://127.0.0.1/d").expect("parses");
        let user = url.user.as_ref().expect("a user is always picked").expose_secret().to_owned();
        assert_eq!(
            url.redact(&format!("password authentication failed for user \"{user}\"")),
            "password authentication failed for user \"…\""
        );
    }
}
