//! Form bodies encoded as `curl --data-urlencode` does, the way the
//! vendors document their endpoints.

/// Encodes form fields the way `curl --data-urlencode` does: every byte but
/// `A-Z a-z 0-9 - . _ ~` becomes `%XX` (a space is `%20`, `@` is `%40`).
#[must_use]
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        curl_escape(&mut out, name);
        out.push('=');
        curl_escape(&mut out, value);
    }
    out
}

/// `form_urlencoded`'s byte serializer, brought to curl's escaping: the
/// WHATWG serializer writes a space as `+`, leaves `*` as is and escapes
/// `~`, where curl (RFC 3986 unreserved set) does the opposite. A `+` in
/// its output is always a space, since a literal `+` comes out as `%2B`.
pub(super) fn curl_escape(out: &mut String, text: &str) {
    for piece in form_urlencoded::byte_serialize(text.as_bytes()) {
        match piece {
            "+" => out.push_str("%20"),
            "%7E" => out.push('~'),
            unreserved => out.push_str(&unreserved.replace('*', "%2A")),
        }
    }
}
