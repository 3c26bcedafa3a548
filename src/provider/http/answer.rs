//! Reading an answer's body, bounded, and saying what a refusal said in
//! one line.

/// Longest answer body read; a longer one is an error.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How many bytes of an unreadable body an error message quotes.
pub(super) const QUOTE_BYTES: usize = 100;

pub(super) enum BodyError {
    TooLarge,
    Read(reqwest::Error),
}

pub(super) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The innermost cause of an error: for reqwest that is the line that
/// matters ("Connection refused", "invalid peer certificate: ...").
pub(super) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = err;
    while let Some(source) = deepest.source() {
        deepest = source;
    }
    deepest.to_string()
}

/// Quotes the first bytes of a body, escaped, on one line.
pub(super) fn quote(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(empty body)".to_owned();
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTE_BYTES)]);
    let mut out = format!("{text:?}");
    if bytes.len() > QUOTE_BYTES {
        out.push_str(" (first 100 bytes)");
    }
    out
}

/// What a refusal said: the JSON `message` (or `error`) when there is one,
/// else the quoted start of the body.
pub(super) fn summarize(json: Option<&serde_json::Value>, bytes: &[u8], content_type: &str) -> String {
    if let Some(json) = json {
        if let Some(message) = provider_message(json) {
            return message;
        }
        let mut text = json.to_string();
        if text.len() > 200 {
            let mut end = 200;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        return text;
    }
    if bytes.is_empty() {
        return "empty body".to_owned();
    }
    format!("non-JSON body ({content_type}): {}", quote(bytes))
}

/// The human-readable message of a JSON answer: `message` (a string or a
/// list of strings, as `NestJS` gives), else a string `error`.
#[must_use]
pub fn provider_message(json: &serde_json::Value) -> Option<String> {
    let strings = |value: &serde_json::Value| -> Option<String> {
        match value {
            serde_json::Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            serde_json::Value::Array(items) => {
                let parts: Vec<&str> = items.iter().filter_map(serde_json::Value::as_str).collect();
                (!parts.is_empty()).then(|| parts.join("; "))
            }
            _ => None,
        }
    };
    json.get("message").and_then(strings).or_else(|| json.get("error").and_then(strings))
}
