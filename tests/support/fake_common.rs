//! Plumbing shared by the fake provider servers: an axum app on
//! `127.0.0.1:0`, run by its own tokio runtime on a background thread (so
//! both `#[tokio::test]`s and plain tests that spawn the real binary can use
//! it), that records every request, injects queued faults, and hands the
//! rest to a vendor-specific [`FakeApi`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Every header, names lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The raw body (lossy UTF-8).
    pub body: String,
    /// When it arrived.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The body decoded as `application/x-www-form-urlencoded`, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        decode_form(&self.body)
    }

    /// One decoded form field.
    pub fn form_field(&self, name: &str) -> Option<String> {
        self.form().into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte).
pub fn decode_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..=i + 2]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A fault injected into the next request (faults are queued, one per request).
#[derive(Clone, Debug)]
pub enum Fault {
    /// HTTP 429 with an optional `Retry-After` value; not processed.
    TooManyRequests {
        /// The `Retry-After` header value (`"1"`, or an HTTP date).
        retry_after: Option<String>,
    },
    /// This status with a small JSON error body; not processed.
    Status(u16),
    /// HTTP 502 with an nginx-style HTML body; not processed.
    BadGatewayHtml,
    /// Answer exactly this; the request is processed first when `process`.
    Raw {
        /// HTTP status.
        status: u16,
        /// `Content-Type` of the answer.
        content_type: &'static str,
        /// The body, sent as is (truncated JSON, wrong shape, ...).
        body: String,
        /// Whether the request is carried out before this answer.
        process: bool,
    },
    /// Process the request, then answer after this delay.
    SlowAnswer(Duration),
    /// Read the request, then close the connection without processing it.
    DropBeforeProcessing,
    /// Process the request (members recorded), then close the connection
    /// without answering: the classic lost answer.
    DropAfterProcessing,
}

/// A vendor's answer to one processed request.
pub struct ApiReply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub json: Value,
}

impl ApiReply {
    /// A reply with this status and body.
    pub fn new(status: u16, json: Value) -> Self {
        Self { status, json }
    }
}

/// A vendor API: turns a request into an answer, updating its own state.
pub trait FakeApi: Send + 'static {
    /// Handles one request (auth, validation, members, answer).
    fn handle(&mut self, request: &RecordedRequest) -> ApiReply;
}

struct Shared<A> {
    api: Mutex<A>,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<VecDeque<Fault>>,
    delay_ms: AtomicU64,
    answer_delay_ms: AtomicU64,
    /// When set, every other request without a queued fault (the 1st, 3rd,
    /// ...) is answered 429 with this `Retry-After`.
    throttle: Mutex<Option<String>>,
    throttle_count: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake server. Dropping it stops the server.
pub struct FakeServer<A: FakeApi> {
    addr: SocketAddr,
    shared: Arc<Shared<A>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The panic payload used to drop a connection without an answer. Resumed
/// with `resume_unwind`, which skips the panic hook: the connection's task
/// ends quietly and its socket is closed.
struct DropConnection;

impl<A: FakeApi> FakeServer<A> {
    /// Starts `api` on `127.0.0.1:0` on a background thread.
    pub fn start_with(api: A) -> Self {
        let shared = Arc::new(Shared {
            api: Mutex::new(api),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
            delay_ms: AtomicU64::new(0),
            answer_delay_ms: AtomicU64::new(0),
            throttle: Mutex::new(None),
            throttle_count: AtomicU64::new(0),
        });
        let app = Router::new().fallback(handle::<A>).with_state(Arc::clone(&shared));
        let (addr, shutdown_tx) = serve_on_loopback("fake-server", app);
        Self { addr, shared, shutdown: Some(shutdown_tx) }
    }

    /// `http://127.0.0.1:PORT`, for a provider's `base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, faulted ones included, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Queues a fault for the next request that has none.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// Queues several faults, one per request.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.shared.faults).extend(faults);
    }

    /// Makes every request wait this long before it is processed (0 = none).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Makes every request that has no fault wait this long *after* it is
    /// processed, before the answer goes out (0 = none): a client killed in
    /// that window has invitations sent whose answers it never saw.
    pub fn set_answer_delay(&self, delay: Duration) {
        self.shared.answer_delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answers every other request (the 1st, 3rd, ...) HTTP 429 with this
    /// `Retry-After`, as a busy service does; queued faults come first.
    pub fn throttle_every_other(&self, retry_after: &str) {
        *lock(&self.shared.throttle) = Some(retry_after.to_owned());
    }

    /// The vendor state, for assertions and setup.
    pub fn api(&self) -> MutexGuard<'_, A> {
        lock(&self.shared.api)
    }
}

impl<A: FakeApi> Drop for FakeServer<A> {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn handle<A: FakeApi>(
    State(shared): State<Arc<Shared<A>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        content_type: headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned),
        body: String::from_utf8_lossy(&body).into_owned(),
        received_at: Instant::now(),
    };
    lock(&shared.requests).push(request.clone());
    let fault = lock(&shared.faults).pop_front().or_else(|| {
        let retry_after = lock(&shared.throttle).clone()?;
        (shared.throttle_count.fetch_add(1, Ordering::SeqCst) % 2 == 0)
            .then_some(Fault::TooManyRequests { retry_after: Some(retry_after) })
    });
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let process = |request: &RecordedRequest| lock(&shared.api).handle(request);
    match fault {
        None => {
            let reply = process(&request);
            let after = shared.answer_delay_ms.load(Ordering::SeqCst);
            if after > 0 {
                tokio::time::sleep(Duration::from_millis(after)).await;
            }
            json_response(&reply)
        }
        Some(Fault::TooManyRequests { retry_after }) => {
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, axum::Json(serde_json::json!({"message": "Too Many Requests"}))).into_response();
            if let Some(value) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&value).expect("header value"));
            }
            response
        }
        Some(Fault::Status(status)) => json_response(&ApiReply::new(
            status,
            serde_json::json!({"error": true, "message": format!("injected HTTP {status}")}),
        )),
        Some(Fault::BadGatewayHtml) => raw(
            502,
            "text/html",
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n\
             <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
                .to_owned(),
        ),
        Some(Fault::Raw { status, content_type, body, process: carry_out }) => {
            if carry_out {
                process(&request);
            }
            raw(status, content_type, body)
        }
        Some(Fault::SlowAnswer(delay)) => {
            let reply = process(&request);
            tokio::time::sleep(delay).await;
            json_response(&reply)
        }
        Some(Fault::DropBeforeProcessing) => std::panic::resume_unwind(Box::new(DropConnection)),
        Some(Fault::DropAfterProcessing) => {
            process(&request);
            std::panic::resume_unwind(Box::new(DropConnection))
        }
    }
}

fn json_response(reply: &ApiReply) -> Response {
    let status = StatusCode::from_u16(reply.status).expect("valid status");
    (status, axum::Json(reply.json.clone())).into_response()
}

fn raw(status: u16, content_type: &'static str, body: String) -> Response {
    let status = StatusCode::from_u16(status).expect("valid status");
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Whether an email is usable: something, an `@`, a dot after it.
pub fn usable_email(email: &str) -> bool {
    let email = email.trim();
    email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    }) && !email.contains(char::is_whitespace)
}

/// `^[0-9a-f]{24}$`, case-insensitive.
pub fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A deterministic 24-hex id: `prefix` (one hex digit) then a counter.
pub fn object_id(prefix: u8, counter: u64) -> String {
    format!("{prefix:x}{counter:023x}")
}

/// Serves `app` on a free loopback port from a thread of its own; answers
/// the address and the sender that shuts it down (dropping it does too).
pub fn serve_on_loopback(name: &str, app: Router) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
                addr_tx.send(listener.local_addr().expect("local addr")).expect("report address");
                tokio::select! {
                    result = axum::serve(listener, app) => result.expect("loopback server"),
                    _ = shutdown_rx => {}
                }
            });
            runtime.shutdown_background();
        })
        .expect("spawn server thread");
    (addr_rx.recv().expect("server address"), shutdown_tx)
}
