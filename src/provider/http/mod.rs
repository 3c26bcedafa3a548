//! The HTTP layer shared by every HTTP provider.
//!
//! One [`HttpClient`] per configured provider does everything that is not
//! vendor-specific: it refuses plain `http://` except on loopback, sends a
//! `User-Agent` of `memberctl/<version>`, applies the connect and request
//! timeouts, enforces the provider's rate limit across all of its concurrent
//! batches, retries with exponential backoff and full jitter, honours
//! `Retry-After`, and turns every way a request can go wrong into one clear
//! [`BatchError`] line that names the provider, the endpoint and the HTTP
//! status, but never a credential.
//!
//! # Retries
//! HTTP 5xx, timeouts and failures to connect or to read the answer are
//! retried up to `max_attempts` attempts in all; no other 4xx is retried.
//! The wait before the next attempt is a random duration in
//! `[0, base * 2^(n-1)]` (capped at [`MAX_BACKOFF`]), or the server's
//! `Retry-After` capped at [`SERVER_ERROR_RETRY_AFTER_CAP`]. The base is
//! 200 ms; the env var `MEMBERCTL_BACKOFF_MS` (read once per process)
//! overrides it, which is how tests keep retries fast.
//!
//! # Rate limiting (HTTP 429)
//! A 429 is the service saying "later", not that the request failed, so it
//! does not count against `max_attempts`. Instead it pauses the *whole
//! provider*: every request to it, in flight or next, waits at one shared
//! gate for the `Retry-After` (delta-seconds or an HTTP date; without
//! one, the backoff above). The time a provider spends paused is charged to
//! its `retry_budget` for the run (overlapping pauses count once). A pause
//! that the rest of the budget cannot cover closes the gate: nothing more is
//! sent to that provider in this run, its unsent members stay planned, and
//! the error says when the service will take requests again. Other
//! providers have gates of their own and carry on.
//!
//! # Uncertainty
//! An attempt *may have been delivered* when the server could have acted on
//! it without memberctl seeing the answer: a timeout after the connection was
//! made, a connection closed before the answer, an unreadable answer, or HTTP
//! 502/504 (a proxy that may have forwarded the request). When the final
//! result is a failure and any attempt may have been delivered, the error is
//! `uncertain`. When the final result is an answer, [`Reply::maybe_delivered_before`]
//! tells the provider that an earlier attempt may have arrived, so that a
//! "duplicate" in that answer is read as "it got there the first time". HTTP
//! 429, 500 and 503 are taken as "not acted upon".

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::zeroize::Zeroize;
use serde::Serialize;

use super::{BatchError, ProviderError, ProviderSettings, Secret};

mod answer;
mod form;
mod gate;
mod retry;

use answer::{describe, quote, read_body, summarize, BodyError};
pub use answer::{provider_message, MAX_BODY_BYTES};
use form::curl_escape;
pub use form::encode_form;
use gate::{Gate, Pause};
pub use retry::{default_backoff, parse_retry_after, DEFAULT_BACKOFF, MAX_BACKOFF, SERVER_ERROR_RETRY_AFTER_CAP};
use retry::{utc_minute_after, whole_seconds};

/// How a provider authenticates. The value is held as a [`Secret`] and sent
/// as a header marked sensitive, so it never shows in Debug output.
pub enum Auth {
    /// A named header carrying the key as is (Networked `x-api-key`).
    Header {
        /// Header name, lowercase.
        name: &'static str,
        /// The key.
        secret: Secret,
    },
    /// `Authorization: Bearer <token>` (Aptly).
    Bearer(Secret),
}

/// A successful (2xx) answer with a JSON body.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The parsed body.
    pub json: serde_json::Value,
    /// How many attempts were made, this one included.
    pub attempts: u32,
    /// An earlier attempt of this request may have reached the server.
    pub maybe_delivered_before: bool,
}

/// A request that ended without a usable 2xx answer.
#[derive(Debug)]
pub struct Failure {
    /// The error for the whole batch.
    pub error: BatchError,
    /// The final HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The final answer's body when it was JSON (a 4xx refusal, say), so a
    /// one-user endpoint can read the provider's reason.
    pub json: Option<serde_json::Value>,
}

impl From<Failure> for BatchError {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

/// The body of one request, serialised once and resent as is on retries,
/// with its method and the precondition it carries.
struct Body {
    method: reqwest::Method,
    bytes: Vec<u8>,
    /// Empty for a request without a body.
    content_type: &'static str,
    /// `If-Match`: the version the change applies to.
    if_match: Option<String>,
}

/// What one attempt came to.
enum Attempt {
    /// Done: an answer to hand back, or a failure not worth retrying.
    Done(Result<Reply, Failure>),
    /// Worth another attempt.
    Retry {
        /// One line saying what went wrong.
        message: String,
        /// The status, when there was an answer.
        status: Option<u16>,
        /// The server asked for this wait.
        retry_after: Option<Duration>,
        /// This attempt may have reached the server.
        maybe_delivered: bool,
        /// The connection could not be made at all (DNS, refused, TLS).
        unreachable: bool,
    },
}

/// The HTTP client of one provider.
pub struct HttpClient {
    client: reqwest::Client,
    base: Url,
    label: String,
    credential_env: String,
    credential_kind: &'static str,
    auth: (HeaderName, HeaderValue),
    /// The credential itself, kept only to scrub it from messages.
    secret: Secret,
    /// The credential in every form [`HttpClient::scrub`] looks for, made
    /// once: every message quoted from an answer is scrubbed.
    secret_forms: Vec<Secret>,
    max_attempts: u32,
    timeout: Duration,
    gate: Gate,
    /// Base of the exponential backoff (see the module docs).
    pub backoff_base: Duration,
}

impl HttpClient {
    /// Builds the client of one provider from its settings.
    ///
    /// Fails when the base URL is missing or unusable, is plain `http://` on
    /// a host that is not loopback, or when the credential cannot be sent as
    /// a header value.
    pub fn new(settings: &ProviderSettings, auth: Auth) -> Result<Self, ProviderError> {
        let base_error = |reason: String| ProviderError::BaseUrl { provider: settings.name.clone(), reason };
        let raw = settings
            .base_url
            .clone()
            .or_else(|| settings.kind.default_base_url().map(str::to_owned))
            .ok_or_else(|| base_error("no `base_url` is configured".to_owned()))?;
        let base = crate::url_policy::check(&raw)
            .map_err(|refusal| base_error(format!("`base_url`: {}; {}", refusal.message, refusal.hint)))?;

        let credential_env = settings.credential_env.clone().unwrap_or_default();
        let (name, value, credential_kind, secret) = match auth {
            Auth::Header { name, secret } => {
                (HeaderName::from_static(name), HeaderValue::from_str(secret.expose()), "API key", secret)
            }
            Auth::Bearer(secret) => {
                let mut bearer = format!("Bearer {}", secret.expose());
                let value = HeaderValue::from_str(&bearer);
                bearer.zeroize();
                (reqwest::header::AUTHORIZATION, value, "bearer token", secret)
            }
        };
        let mut value = value.map_err(|_| ProviderError::Setup {
            provider: settings.name.clone(),
            reason: format!("the value of `{credential_env}` cannot be sent in an HTTP header (control characters?)"),
        })?;
        value.set_sensitive(true);

        let timeout = if settings.timeout_ms == 0 {
            Duration::from_millis(super::defaults::TIMEOUT_MS)
        } else {
            settings.timeout()
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("memberctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| ProviderError::Setup { provider: settings.name.clone(), reason: describe(&err) })?;
        Ok(Self {
            client,
            base,
            label: format!("{} `{}`", settings.kind, settings.name),
            credential_env,
            credential_kind,
            auth: (name, value),
            secret_forms: encodings(secret.expose()).into_iter().map(Secret::new).collect(),
            secret,
            max_attempts: settings.max_attempts.max(1),
            timeout,
            gate: Gate::new(settings.rate_limit, settings.retry_budget()),
            backoff_base: default_backoff(),
        })
    }

    /// The full URL of an endpoint path such as `/auth/v1/user/bulk-invite`.
    #[must_use]
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// The provider's type and name (``networked `community` ``), the prefix of
    /// every message about this provider.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `body` as JSON bytes; a value that cannot be encoded fails the
    /// request before anything is sent.
    fn encode<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> Result<Vec<u8>, Failure> {
        serde_json::to_vec(body).map_err(|err| Failure {
            error: BatchError {
                uncertain: false,
                fatal: false,
                message: format!("{}: cannot encode the request for {path}: {err}", self.label),
                hint: None,
            },
            status: None,
            json: None,
        })
    }

    /// POSTs `body` as `application/json`.
    pub async fn post_json<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> Result<Reply, Failure> {
        let bytes = self.encode(path, body)?;
        let body = Body { method: reqwest::Method::POST, bytes, content_type: "application/json", if_match: None };
        self.post(path, &body, &[]).await
    }

    /// POSTs `fields` as `application/x-www-form-urlencoded`, encoded as
    /// `curl --data-urlencode` does (see [`encode_form`]).
    ///
    /// A field named `password` is a secret: should the provider echo it in
    /// an error, it is scrubbed from the message like the credential is.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<Reply, Failure> {
        let body = Body {
            method: reqwest::Method::POST,
            bytes: encode_form(fields).into_bytes(),
            content_type: "application/x-www-form-urlencoded",
            if_match: None,
        };
        let secrets: Vec<&str> =
            fields.iter().filter(|(name, _)| *name == "password").map(|(_, value)| *value).collect();
        self.post(path, &body, &secrets).await
    }

    /// Sends `method` to `path` (which may carry a query) with an optional
    /// JSON body and `If-Match` version, under the same retries, rate limit
    /// and 429 budget as a POST. A 2xx answer without a body (a 204, or
    /// any empty answer to a request that is not a POST) reads as JSON `null`.
    pub async fn request_json<T: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&T>,
        if_match: Option<&str>,
    ) -> Result<Reply, Failure> {
        let (bytes, content_type) = match body {
            None => (Vec::new(), ""),
            Some(body) => (self.encode(path, body)?, "application/scim+json"),
        };
        let body = Body { method, bytes, content_type, if_match: if_match.map(str::to_owned) };
        self.post(path, &body, &[]).await
    }

    /// Replaces the credential and `extra` secrets in text that quotes a
    /// provider's answer: as written, in every encoding a service may
    /// echo them in (percent-encoded either case, form-encoded, JSON- and
    /// HTML-escaped), and cut short (a quote truncated inside a secret).
    #[must_use]
    pub fn scrub(&self, text: &str, extra: &[&str]) -> String {
        let mut out = text.to_owned();
        redact(&mut out, self.secret.expose(), self.secret_forms.iter().map(Secret::expose));
        for secret in extra {
            redact(&mut out, secret, encodings(secret).iter().map(String::as_str));
        }
        out
    }

    async fn post(&self, path: &str, body: &Body, secrets: &[&str]) -> Result<Reply, Failure> {
        self.post_attempts(path, body, secrets).await.map_err(|mut failure| {
            failure.error.message = self.scrub(&failure.error.message, secrets);
            failure.error.hint = failure.error.hint.map(|hint| self.scrub(&hint, secrets));
            failure
        })
    }

    async fn post_attempts(&self, path: &str, body: &Body, secrets: &[&str]) -> Result<Reply, Failure> {
        let url = self.endpoint(path);
        let what = format!("{}: {} {url}", self.label, body.method);
        let allowed = self.max_attempts;
        // Attempts that count against `max_attempts` (429s do not), and all of them.
        let (mut failures, mut attempts, mut rate_limited) = (0_u32, 0_u32, 0_u32);
        let mut maybe_delivered = false;
        let mut all_unreachable = true;
        let (message, status) = loop {
            if let Err(error) = self.gate.pass().await {
                // Not sent (again): the gate closed on another request's 429.
                return Err(Failure {
                    error: BatchError { uncertain: maybe_delivered, ..error },
                    status: None,
                    json: None,
                });
            }
            attempts += 1;
            match self.attempt(&url, &what, body, attempts, maybe_delivered).await {
                Attempt::Done(result) => return result,
                Attempt::Retry { status: Some(429), retry_after, message, .. } => {
                    rate_limited += 1;
                    all_unreachable = false;
                    let pause = match retry_after {
                        Some(wait) if !wait.is_zero() => Pause::Asked(wait),
                        _ => Pause::Backoff(self.backoff(rate_limited)),
                    };
                    match self.gate.pause(pause) {
                        Ok(wait) => log::info!(
                            "{what}: {}; pausing every request to this provider for {} ms",
                            self.scrub(&message, secrets),
                            wait.as_millis()
                        ),
                        Err(left) => {
                            let error = self.gate.close(self.out_of_budget(&what, pause, left));
                            return Err(Failure {
                                error: BatchError { uncertain: maybe_delivered, ..error },
                                status: Some(429),
                                json: None,
                            });
                        }
                    }
                }
                Attempt::Retry { message, status, retry_after, maybe_delivered: delivered, unreachable } => {
                    failures += 1;
                    maybe_delivered |= delivered;
                    all_unreachable &= unreachable;
                    if failures >= allowed {
                        break (message, status);
                    }
                    let wait = retry_after
                        .map_or_else(|| self.backoff(failures), |wait| wait.min(SERVER_ERROR_RETRY_AFTER_CAP));
                    log::info!(
                        "{what}: attempt {failures}/{allowed} failed: {}; retrying in {} ms",
                        self.scrub(&message, secrets),
                        wait.as_millis()
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        };
        let tries = if allowed == 1 { "1 attempt".to_owned() } else { format!("{allowed} attempts") };
        let tries = if rate_limited > 0 { format!("{tries}, besides {rate_limited} answered HTTP 429") } else { tries };
        let error = if all_unreachable {
            BatchError {
                uncertain: false,
                fatal: true,
                message: format!("{what}: cannot reach the provider: {message} (gave up after {tries})"),
                hint: Some("check `base_url` and the network (DNS, firewall, proxy, TLS certificates)".to_owned()),
            }
        } else {
            BatchError {
                uncertain: maybe_delivered,
                fatal: false,
                message: format!("{what}: {message} (gave up after {tries})"),
                hint: Some(if maybe_delivered {
                    "the request may have reached the provider: its emails are marked uncertain, and the `uncertain` \
                     policy decides on the next apply"
                        .to_owned()
                } else {
                    "the provider kept failing; try again later, or lower `concurrency` or `rate_limit`".to_owned()
                }),
            }
        };
        Err(Failure { error, status, json: None })
    }

    /// The error that shuts the gate when a 429's pause is more than the
    /// rest of the budget: what the service asked, and when to try again.
    fn out_of_budget(&self, what: &str, pause: Pause, left: Duration) -> BatchError {
        let budget = humantime::format_duration(whole_seconds(self.gate.budget));
        let message = match pause {
            Pause::Asked(wait) => format!(
                "{what}: HTTP 429 Too Many Requests: the service asked to wait {}; try again after {} \
                 (that is more than the {} left of this provider's `retry_budget` of {budget})",
                humantime::format_duration(whole_seconds(wait)),
                SystemTime::now()
                    .checked_add(wait)
                    .and_then(|at| utc_minute_after(at, SystemTime::now()))
                    .unwrap_or_else(|| "a time too far ahead to name".to_owned()),
                // Rounded down: no more is left than it says.
                humantime::format_duration(Duration::from_secs(left.as_secs())),
            ),
            Pause::Backoff(_) => format!(
                "{what}: HTTP 429 Too Many Requests: still rate limited after pausing for this provider's whole \
                 `retry_budget` of {budget}; try again later"
            ),
        };
        BatchError {
            uncertain: false,
            fatal: true,
            message,
            hint: Some(
                "nothing more is sent to this provider in this run; its members not yet sent stay planned for the \
                 next apply (a larger `retry_budget` waits longer in one run)"
                    .to_owned(),
            ),
        }
    }

    async fn attempt(&self, url: &str, what: &str, body: &Body, attempt: u32, delivered_before: bool) -> Attempt {
        log::debug!("{what}: attempt {attempt}");
        let mut request =
            self.client.request(body.method.clone(), url).header(self.auth.0.clone(), self.auth.1.clone());
        if !body.content_type.is_empty() {
            request = request.header(CONTENT_TYPE, body.content_type).body(body.bytes.clone());
        }
        if let Some(version) = &body.if_match {
            request = request.header(reqwest::header::IF_MATCH, version.as_str());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return self.transport_error(&err),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| parse_retry_after(text, SystemTime::now()));
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("no content type")
            .to_owned();
        let bytes = match read_body(response).await {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge) => {
                return Attempt::Done(Err(Failure {
                    error: BatchError {
                        uncertain: status.is_success() || delivered_before,
                        fatal: false,
                        message: format!("{what}: HTTP {status} with a body larger than {MAX_BODY_BYTES} bytes"),
                        hint: None,
                    },
                    status: Some(status.as_u16()),
                    json: None,
                }))
            }
            Err(BodyError::Read(err)) => {
                let message = if err.is_timeout() {
                    format!("HTTP {status}, then no complete answer within {} ms", self.timeout.as_millis())
                } else {
                    format!("HTTP {status}, then the answer could not be read: {}", describe(&err))
                };
                return Attempt::Retry {
                    message,
                    status: Some(status.as_u16()),
                    retry_after: None,
                    maybe_delivered: true,
                    unreachable: false,
                };
            }
        };
        let bodiless = bytes.iter().all(u8::is_ascii_whitespace)
            && (status == StatusCode::NO_CONTENT || body.method != reqwest::Method::POST);
        let json =
            if bodiless { Ok(serde_json::Value::Null) } else { serde_json::from_slice::<serde_json::Value>(&bytes) };

        if status.is_success() {
            return Attempt::Done(match json {
                Ok(json) => Ok(Reply {
                    status: status.as_u16(),
                    json,
                    attempts: attempt,
                    maybe_delivered_before: delivered_before,
                }),
                Err(err) => Err(Failure {
                    error: BatchError {
                        uncertain: true,
                        fatal: false,
                        message: format!(
                            "{what}: HTTP {status} with a body that is not valid JSON ({err}; {content_type}): {}",
                            quote(&bytes)
                        ),
                        hint: Some(
                            "the request reached the provider but its answer cannot be read: the emails are marked \
                             uncertain"
                                .to_owned(),
                        ),
                    },
                    status: Some(status.as_u16()),
                    json: None,
                }),
            });
        }
        let summary = summarize(json.as_ref().ok(), &bytes, &content_type);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let var = &self.credential_env;
            return Attempt::Done(Err(Failure {
                error: BatchError {
                    uncertain: delivered_before,
                    fatal: true,
                    message: format!(
                        "{what}: HTTP {status}: the {} from the env var `{var}` was refused ({summary})",
                        self.credential_kind
                    ),
                    hint: Some(format!(
                        "check that `{var}` holds a valid {} for this provider, with the rights to invite members \
                         (its value is never printed)",
                        self.credential_kind
                    )),
                },
                status: Some(status.as_u16()),
                json: json.ok(),
            }));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Attempt::Retry {
                message: format!("HTTP {status}: {summary}"),
                status: Some(status.as_u16()),
                retry_after,
                maybe_delivered: status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT,
                unreachable: false,
            };
        }
        let (fatal, hint) = match status.as_u16() {
            300..=399 => {
                (true, "the API answered with a redirect: check `base_url` (memberctl does not follow redirects)")
            }
            404 | 405 => (true, "check `base_url`: the endpoint does not exist there"),
            413 => (false, "the request was too large: lower `batch_size` for this provider"),
            _ => (false, "the provider refused the request; nothing in it was carried out"),
        };
        // DESIGN names the env var for a 400 too (some services answer a
        // malformed key with 400, not 401).
        let message = if status == StatusCode::BAD_REQUEST {
            format!(
                "{what}: HTTP {status}: {summary} (sent with the {} from the env var `{}`)",
                self.credential_kind, self.credential_env
            )
        } else {
            format!("{what}: HTTP {status}: {summary}")
        };
        Attempt::Done(Err(Failure {
            error: BatchError { uncertain: delivered_before, fatal, message, hint: Some(hint.to_owned()) },
            status: Some(status.as_u16()),
            json: json.ok(),
        }))
    }

    fn transport_error(&self, err: &reqwest::Error) -> Attempt {
        if err.is_connect() {
            Attempt::Retry {
                message: describe(err),
                status: None,
                retry_after: None,
                maybe_delivered: false,
                unreachable: true,
            }
        } else if err.is_timeout() {
            Attempt::Retry {
                message: format!("no answer within {} ms", self.timeout.as_millis()),
                status: None,
                retry_after: None,
                maybe_delivered: true,
                unreachable: false,
            }
        } else {
            Attempt::Retry {
                message: format!("the connection failed before an answer: {}", describe(err)),
                status: None,
                retry_after: None,
                maybe_delivered: true,
                unreachable: false,
            }
        }
    }

    /// Full-jitter exponential backoff before retry number `retry`.
    fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_base.saturating_mul(1 << retry.saturating_sub(1).min(20)).min(MAX_BACKOFF);
        Duration::from_millis(fastrand::u64(0..=ceiling.as_millis() as u64))
    }
}

/// The ways a service may quote `secret` back: as written, percent-encoded
/// (as curl sends a form, in upper and in lower case), form-encoded (`+`
/// for a space), and escaped for JSON and for HTML.
fn encodings(secret: &str) -> Vec<String> {
    let mut curl = String::new();
    curl_escape(&mut curl, secret);
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.get(1..json.len().saturating_sub(1)).unwrap_or_default().to_owned();
    // As Go's encoder writes JSON: `&`, `<` and `>` as `\u0026` and so on.
    let go_json = json.replace('&', "\\u0026").replace('<', "\\u003c").replace('>', "\\u003e");
    let html = secret.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let debug = format!("{secret:?}");
    let debug = debug[1..debug.len() - 1].to_owned();
    // Lower-case escapes (`%2f`), the rest as it is.
    let mut lower = String::with_capacity(curl.len());
    let mut after_percent = 0u8;
    for c in curl.chars() {
        lower.push(if after_percent > 0 { c.to_ascii_lowercase() } else { c });
        after_percent = if c == '%' { 2 } else { after_percent.saturating_sub(1) };
    }
    let mut forms = vec![secret.to_owned(), lower, curl, form, go_json, json, html, debug];
    forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    forms.dedup();
    forms
}

/// Replaces `secret`, given in its `forms` ([`encodings`]), in `out`, and
/// what is left of it cut short. A secret under 3 bytes is not looked for:
/// it would match ordinary text.
fn redact<'a>(out: &mut String, secret: &str, forms: impl Iterator<Item = &'a str>) {
    if secret.len() < 3 {
        return;
    }
    for form in forms {
        if !form.is_empty() && out.contains(form) {
            *out = out.replace(form, "[redacted]");
        }
    }
    *out = redact_cut_short(out, secret);
}

/// How much of a secret, cut short, is still worth hiding: a quote that
/// ends inside a key must not show most of it.
const SECRET_PREFIX: usize = 8;

/// `text` with every run of at least [`SECRET_PREFIX`] characters that
/// matches the start of `secret` (a quote cut short inside it) redacted.
fn redact_cut_short(text: &str, secret: &str) -> String {
    if secret.len() < SECRET_PREFIX {
        return text.to_owned();
    }
    // The first characters of at least SECRET_PREFIX bytes.
    let mut cut = SECRET_PREFIX;
    while !secret.is_char_boundary(cut) {
        cut += 1;
    }
    let start = &secret[..cut];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(start) {
        out.push_str(&rest[..at]);
        let matched = rest[at..].bytes().zip(secret.bytes()).take_while(|(a, b)| a == b).count();
        // Whole characters only: a secret is compared byte by byte.
        let mut end = at + matched;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str("[redacted]");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::UNIX_EPOCH;

    #[test]
    fn retry_after_seconds_and_dates_in_all_three_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
        let seven = Some(Duration::from_secs(7));
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), seven);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), seven);
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), seven);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("yesterday", now), None);
    }

    // Found by a review: a service that quoted the key form-encoded, in
    // lower-case percent-encoding, HTML- or Go-JSON-escaped, or cut short,
    // got it past the scrubber.
    #[test]
    fn a_secret_is_redacted_in_every_encoding_and_cut_short() {
        let secret = "tok en&<1>/ü-9f8e7d";
        let quoted = [
            "tok%20en%26%3C1%3E%2F%C3%BC-9f8e7d",
            "tok%20en%26%3c1%3e%2f%c3%bc-9f8e7d",
            "tok+en%26%3C1%3E%2F%C3%BC-9f8e7d",
            "tok en&amp;&lt;1&gt;/ü-9f8e7d",
            "tok en\\u0026\\u003c1\\u003e/ü-9f8e7d",
        ];
        let forms = encodings(secret);
        for quote in quoted {
            assert!(forms.iter().any(|form| form == quote), "{quote} not among {forms:?}");
        }
        assert_eq!(redact_cut_short("header: tok en&<1 (truncated)", secret), "header: [redacted] (truncated)");
        assert_eq!(redact_cut_short("tok en& is short", secret), "tok en& is short", "under 8 bytes: kept");
        // Only the escapes are lower-cased: `Admin1` is not the secret `admin1`.
        assert!(!encodings("Admin1/x").iter().any(|form| form == "admin1%2fx"), "{:?}", encodings("Admin1/x"));
        assert!(encodings("Admin1/x").iter().any(|form| form == "Admin1%2fx"));
        // A multi-byte character across the eighth byte still cuts short.
        assert_eq!(redact_cut_short("key: abcdefgüß-rest", "abcdefgüß-rest-of-it"), "key: [redacted]");
    }

    #[test]
    fn form_encoding_matches_curl_data_urlencode() {
        assert_eq!(
            encode_form(&[("email", "example9@yopmail.com"), ("name", "Example User 9"), ("password", "Aa1235678@")]),
            "email=example9%40yopmail.com&name=Example%20User%209&password=Aa1235678%40"
        );
        // The bytes where the WHATWG form serializer and curl differ, and UTF-8.
        // (`curl --data-urlencode 'n=a b*c~d+e&f=g/ü'` sends exactly this.)
        assert_eq!(encode_form(&[("n", "a b*c~d+e&f=g/ü")]), "n=a%20b%2Ac~d%2Be%26f%3Dg%2F%C3%BC");
    }

    #[test]
    fn try_again_times_are_utc_minutes_rounded_up() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_582_000); // 2025-12-01T09:40:00Z
        let after = |seconds: u64| utc_minute_after(now + Duration::from_secs(seconds), now);
        assert_eq!(after(900).as_deref(), Some("09:55 UTC"));
        assert_eq!(utc_minute_after(now + Duration::from_millis(900_500), now).as_deref(), Some("09:55 UTC"));
        assert_eq!(after(901).as_deref(), Some("09:56 UTC"));
        assert_eq!(after(86_400).as_deref(), Some("2025-12-02 09:40 UTC"));
        assert_eq!(after(253_402_300_740 - 1_764_582_000).as_deref(), Some("9999-12-31 23:59 UTC"));
        assert_eq!(after(u64::from(u32::MAX) * 60), None, "past 9999: no panic");
    }

    #[test]
    fn loopback_hosts() {
        for url in
            ["http://127.0.0.1:8080", "http://127.1.2.3/", "http://[::1]:9/", "http://localhost", "http://LOCALHOST."]
        {
            assert!(crate::url_policy::is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in ["http://example.com", "http://10.0.0.1", "http://localhost.example.com", "http://[::2]"] {
            assert!(!crate::url_policy::is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        let html = format!("<html>\n<body>{}</body></html>", "x".repeat(200));
        let quoted = quote(html.as_bytes());
        assert!(quoted.starts_with("\"<html>\\n<body>xxx"), "{quoted}");
        assert!(quoted.ends_with("(first 100 bytes)"));
    }
}
