//! Which service URLs memberctl talks to: `https://`, or plain `http://` to a
//! loopback host (test servers), never with a credential inside the URL.
//!
//! One rule, used by config validation (so `validate` refuses what `apply`
//! would) and by the HTTP client (so a saved plan edited by hand is refused
//! too).

use std::net::IpAddr;

use reqwest::Url;

/// Why a URL is refused, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What is wrong; never echoes a credential.
    pub message: String,
    /// What to do.
    pub hint: &'static str,
}

const USE_HTTPS: &str = "use `https://`; plain `http://` is for loopback test servers";

/// Parses and checks a service's base URL.
pub fn check(raw: &str) -> Result<Url, Refusal> {
    let refuse = |message: String, hint| Err(Refusal { message, hint });
    let Ok(url) = Url::parse(raw.trim()) else {
        return refuse(format!("`{}` is not a URL", hide_userinfo(raw)), USE_HTTPS);
    };
    if !url.username().is_empty() || url.password().is_some() {
        // Not quoted: the URL itself carries a credential.
        return refuse(
            "`base_url` carries a user name or password".to_owned(),
            "remove it from the URL: the credential comes from the environment (see `api_key_env`, `token_env`)",
        );
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()).map(str::to_owned) else {
        return refuse(format!("`{raw}` has no host"), USE_HTTPS);
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return refuse(format!("plain `http://` is refused for `{host}`, which is not loopback"), USE_HTTPS),
        other => return refuse(format!("unsupported scheme `{other}`"), USE_HTTPS),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return refuse(format!("`{raw}` must not have a query or fragment"), "give the service's base path only");
    }
    Ok(url)
}

/// Whether `url`'s host is a loopback address (127.0.0.0/8, `::1`) or `localhost`.
#[must_use]
pub fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(is_loopback_host)
}

/// Whether `host` (a name or an address, IPv6 with or without brackets) is loopback.
#[must_use]
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    // `localhost` itself, not `*.localhost`: RFC 6761 reserves those too,
    // but whether they reach 127.0.0.1 is up to the system's resolver (glibc
    // asks DNS for them), and a plaintext credential must not depend on it.
    host.trim_end_matches('.').eq_ignore_ascii_case("localhost")
}

/// `text` with the user name and password of any URL in it replaced by
/// `[redacted]`, so that a problem never echoes a credential.
#[must_use]
pub fn hide_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        let authority_end =
            tail.find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'') || c.is_whitespace()).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("[redacted]");
                out.push_str(&tail[at..authority_end]);
            }
            None => out.push_str(&tail[..authority_end]),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{check, is_loopback_host};

    #[test]
    fn https_anywhere_http_only_on_loopback_never_credentials() {
        assert!(check("https://api.example.com/v1").is_ok());
        assert!(check("http://127.0.0.1:8080/scim/v2").is_ok());
        assert!(check("http://[::1]:9/").is_ok());
        assert!(check("http://localhost/").is_ok());
        assert!(check("http://127.0.0.1.example.com/").is_err());
        assert!(check("http://api.example.com/").is_err());
        assert!(check("ftp://api.example.com/").is_err());
        let refused = check("https://user:hunter2@api.example.com/").unwrap_err();
        assert!(!refused.message.contains("hunter2"), "{refused:?}");
        assert!(check("https://api.example.com/?x=1").is_err());
    }

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST."] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["10.0.0.1", "example.com", "localhost.example.com", "::2", "a.localhost", "evil.localhost."] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
