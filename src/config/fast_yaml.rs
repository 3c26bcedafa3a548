//! A fast reader for the plain block-style YAML that membership files are
//! written in, used before `serde_yaml`.
//!
//! `serde_yaml` loads every event of a document into memory before
//! deserializing, which made it most of the time and memory of a plan of a
//! large file. This reader deserializes straight from the text, line by line,
//! but only accepts a conservative subset: block mappings and sequences, one-line
//! flow sequences and mappings of plain scalars, plain scalars on one line, and
//! quoted scalars without escapes. It bails out on anything else (anchors,
//! tags, multi-line or block scalars, escapes, tabs, ambiguous plain scalars
//! such as `1.5e3` where YAML's typing matters) and on every error, and
//! [`parse_file`](super::parse_file) then parses the file with `serde_yaml` as before, so errors
//! and their positions are exactly `serde_yaml`'s. Where it succeeds it gives
//! what `serde_yaml` gives: scalars are typed by the same rules.

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::model::ConfigFile;

/// "Not in the subset, or an error": either way, use `serde_yaml`.
#[derive(Debug)]
pub(crate) struct Bail;

impl fmt::Display for Bail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not handled by the fast reader")
    }
}

impl std::error::Error for Bail {}

impl de::Error for Bail {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Bail
    }
}

type Result<T> = std::result::Result<T, Bail>;

/// Parses `text`, or `None` when it is outside the subset or invalid.
pub(crate) fn parse(text: &str) -> Option<ConfigFile> {
    if !plain_text(text) {
        return None;
    }
    let mut reader = Reader { rest: text, peeked: None, started: false };
    let file = ConfigFile::deserialize(Value { reader: &mut reader, node: Pending::Block { parent: -1, same: false } })
        .ok()?;
    // Everything must have been read.
    match reader.peek() {
        Ok(None) => Some(file),
        _ => None,
    }
}

/// A file cut for parsing on several threads: the file without its
/// top-level `members:` block, and that block's items in pieces.
pub(crate) struct Split<'a> {
    /// The file with the `members:` line and its items taken out.
    pub head: String,
    /// Consecutive runs of whole `- ` items, in order.
    pub pieces: Vec<&'a str>,
    /// How many items each piece holds (so each run's place in the
    /// sequence is known before the runs before it are parsed).
    pub items: Vec<usize>,
}

/// Cuts `text` into its head and about `pieces` runs of member items, or
/// `None` when the file's shape is not the plain one this expects (one
/// `members:` line at the top level, items at one indentation): such a file
/// is parsed whole. Parsing the head and each run and joining the members
/// gives what parsing the whole file gives; tests hold it to that.
pub(crate) fn split(text: &str, pieces: usize) -> Option<Split<'_>> {
    if pieces < 2 || !plain_text(text) {
        return None;
    }
    let mut offset = 0;
    // Where the `members:` line starts, once seen.
    let mut members_at: Option<usize> = None;
    let mut item_indent: Option<usize> = None;
    let mut starts: Vec<usize> = Vec::new();
    // Where the members block ends, once it has.
    let mut end: Option<usize> = None;
    let mut seen_content = false;
    // Byte by byte: this pass runs over the whole file before any thread
    // starts, so it must cost little next to parsing.
    for line in text.split_inclusive('\n') {
        let at = offset;
        offset += line.len();
        let bytes = line.as_bytes();
        let indent = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
        let rest = &bytes[indent..];
        match rest.first() {
            None | Some(b'\n' | b'#') => continue,
            _ => {}
        }
        let is_item = rest[0] == b'-' && matches!(rest.get(1), None | Some(b' ' | b'\n'));
        let first_content = !seen_content;
        seen_content = true;
        if first_content && indent != 0 {
            // The top-level mapping is not at the margin, where `members:`
            // is looked for.
            return None;
        }
        if indent == 0 {
            let body = line.trim_end_matches(['\n', ' ']);
            if body == "---" && first_content {
                // The one document start the reader allows stays in the head.
                continue;
            }
            if body.starts_with("---") || body.starts_with("...") || body.starts_with('%') {
                return None;
            }
            if members_at.is_none() {
                if body.strip_prefix("members:").is_some_and(|rest| {
                    rest.is_empty() || (rest.starts_with(' ') && strip_comment(rest).trim_start().is_empty())
                }) {
                    members_at = Some(at);
                    continue;
                }
                if body.starts_with("members") {
                    // `members: []`, `members :` and the like: parsed whole.
                    return None;
                }
            } else if body.starts_with("members") {
                // A second `members:`: parsed whole, which reports it.
                return None;
            }
        }
        if members_at.is_none() {
            continue;
        }
        let items_at = *item_indent.get_or_insert(indent);
        if end.is_some() || (indent == 0 && !(items_at == 0 && is_item)) {
            end.get_or_insert(at);
        } else if indent == items_at && is_item {
            starts.push(at);
        } else if indent < items_at || starts.is_empty() {
            return None;
        }
    }
    let members_at = members_at?;
    let end = end.unwrap_or(text.len());
    if starts.len() < 2 {
        return None;
    }
    let mut head = String::with_capacity(members_at + text.len() - end);
    head.push_str(&text[..members_at]);
    head.push_str(&text[end..]);
    // Pieces of about equal bytes, each cut at an item's first line.
    let total = end - starts[0];
    // The items each piece starts at, as indexes into `starts`.
    let mut first_items = vec![0];
    for (index, &start) in starts.iter().enumerate().skip(1) {
        if (start - starts[0]) * pieces >= total * first_items.len() {
            first_items.push(index);
        }
    }
    first_items.push(starts.len());
    let at = |item: usize| starts.get(item).copied().unwrap_or(end);
    let pieces = first_items.windows(2).map(|w| &text[at(w[0])..at(w[1])]).collect();
    let items = first_items.windows(2).map(|w| w[1] - w[0]).collect();
    Some(Split { head, pieces, items })
}

/// Parses one run of member items cut by [`split`].
///
/// `expected` is how many members the piece should hold (what `split`
/// counted): the list is sized for them at once. Grown by doubling instead,
/// copying members of a few hundred bytes each, it was a twelfth of a
/// plan's time (mostly the kernel zeroing the pages of each new copy).
pub(crate) fn parse_members(piece: &str, expected: usize) -> Option<Vec<super::model::MemberConfig>> {
    struct Members(usize);
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<super::model::MemberConfig>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of members")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
            let mut members = Vec::with_capacity(self.0);
            while let Some(member) = seq.next_element()? {
                members.push(member);
            }
            Ok(members)
        }
    }
    let mut reader = Reader { rest: piece, peeked: None, started: true };
    let members = de::Deserializer::deserialize_seq(
        Value { reader: &mut reader, node: Pending::Block { parent: -1, same: false } },
        Members(expected),
    )
    .ok()?;
    match reader.peek() {
        Ok(None) => Some(members),
        _ => None,
    }
}

/// Tabs, CRs, control characters, BOMs and the Unicode line breaks are
/// where YAML gets subtle: such text is left to `serde_yaml`.
fn plain_text(text: &str) -> bool {
    // Every byte of a chunk looked at, without stopping at the first control
    // character: a loop that cannot stop early is done many bytes at a time
    // (this was a third of cutting a large file).
    let control = |chunk: &[u8]| chunk.iter().fold(0u8, |found, &b| found | u8::from(b < 0x20 && b != b'\n')) != 0;
    !text.as_bytes().chunks(64).any(control)
        && (text.is_ascii() || !text.contains(['\u{feff}', '\u{85}', '\u{2028}', '\u{2029}']))
}

/// One line with content: its indentation and the rest.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    body: &'a str,
}

struct Reader<'a> {
    rest: &'a str,
    peeked: Option<Line<'a>>,
    started: bool,
}

impl<'a> Reader<'a> {
    /// The next line with content (blank and comment lines skipped).
    fn peek(&mut self) -> Result<Option<Line<'a>>> {
        if self.peeked.is_none() {
            while !self.rest.is_empty() {
                let (line, rest) = self.rest.split_once('\n').unwrap_or((self.rest, ""));
                self.rest = rest;
                let body = line.trim_start_matches(' ');
                let body = body.trim_end_matches(' ');
                if body.is_empty() || body.starts_with('#') {
                    continue;
                }
                let indent = line.len() - line.trim_start_matches(' ').len();
                if indent == 0 && (body.starts_with("---") || body.starts_with("...") || body.starts_with('%')) {
                    // One `---` may open the document; anything else
                    // (more documents, directives) is for serde_yaml.
                    if body == "---" && !self.started {
                        self.started = true;
                        continue;
                    }
                    return Err(Bail);
                }
                self.started = true;
                self.peeked = Some(Line { indent, body });
                break;
            }
        }
        Ok(self.peeked)
    }

    fn take(&mut self) {
        self.peeked = None;
    }
}

/// A key at the start of a mapping line: `key:` then a space or the end.
fn split_key(body: &str) -> Option<(&str, &str)> {
    let colon = body.find(':')?;
    let (key, rest) = (&body[..colon], &body[colon + 1..]);
    let first_ok = key.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let all_ok = key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    (first_ok && all_ok && (rest.is_empty() || rest.starts_with(' '))).then_some((key, rest))
}

/// `-` then a space or the end: a block sequence item.
fn seq_item(body: &str) -> Option<&str> {
    let rest = body.strip_prefix('-')?;
    (rest.is_empty() || rest.starts_with(' ')).then_some(rest)
}

/// Cuts a comment: `#` at the start or after a space.
fn strip_comment(text: &str) -> &str {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1] == b' ') {
            return &text[..i];
        }
    }
    text
}

/// Whether only spaces and a comment follow a closing quote or bracket.
fn only_comment_after(after: &str) -> bool {
    after.is_empty()
        || (after.starts_with(' ') && (after.trim_start().is_empty() || after.trim_start().starts_with('#')))
}

/// A plain scalar the subset accepts (`flow`: inside `[...]` or `{...}`).
fn plain_ok(text: &str, flow: bool) -> bool {
    const INDICATORS: &[char] =
        &['-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`'];
    let Some(first) = text.chars().next() else { return false };
    // One pass over the bytes: `str::contains` sets up a substring searcher
    // per call, which was most of this check's time on short values.
    let comment_or_key = text.as_bytes().windows(2).any(|pair| matches!(pair, [b':', b' '] | [b' ', b'#']));
    if INDICATORS.contains(&first) || comment_or_key || text.ends_with(':') {
        return false;
    }
    !flow || !text.contains(['[', ']', '{', '}', ',', '#', '\'', '"'])
}

/// What a value is, once its first line is seen.
enum Node<'a> {
    /// A plain scalar on one line (maybe empty: no value at all).
    Plain(&'a str),
    /// A quoted scalar without escapes.
    Quoted(&'a str),
    /// `[a, b]` on one line.
    FlowSeq(Vec<&'a str>),
    /// `{k: v, ...}` on one line.
    FlowMap(Vec<(&'a str, &'a str)>),
    /// `- ...` lines at this indentation.
    BlockSeq(usize),
    /// `key: ...` lines at this indentation; the first one maybe already
    /// read (after a sequence's `- `).
    BlockMap(usize, Option<&'a str>),
}

/// Where a value is before it is looked at.
enum Pending<'a> {
    /// Text on the line after `key:` or `- ` (may be empty).
    Inline { text: &'a str, parent: isize, same: bool },
    /// On the following lines, indented more than `parent` (or, when
    /// `same`, a block sequence at the parent's own indentation).
    Block { parent: isize, same: bool },
    /// A scalar inside a flow collection, or a key.
    Scalar(&'a str),
}

fn inline(text: &str) -> Result<Option<Node<'_>>> {
    let t = text.trim_start_matches(' ');
    let Some(first) = t.chars().next() else { return Ok(None) };
    match first {
        '#' => Ok(None),
        '"' | '\'' => {
            let end = t[1..].find(first).ok_or(Bail)? + 1;
            let inner = &t[1..end];
            if first == '"' && inner.contains('\\') {
                return Err(Bail);
            }
            if only_comment_after(&t[end + 1..]) {
                Ok(Some(Node::Quoted(inner)))
            } else {
                Err(Bail)
            }
        }
        '[' | '{' => {
            let close = if first == '[' { ']' } else { '}' };
            let end = t.find(close).ok_or(Bail)?;
            if !only_comment_after(&t[end + 1..]) {
                return Err(Bail);
            }
            let inner = t[1..end].trim_matches(' ');
            let items: Vec<&str> =
                if inner.is_empty() { Vec::new() } else { inner.split(',').map(|i| i.trim_matches(' ')).collect() };
            if first == '[' {
                if items.iter().all(|i| plain_ok(i, true)) {
                    Ok(Some(Node::FlowSeq(items)))
                } else {
                    Err(Bail)
                }
            } else {
                let mut pairs = Vec::with_capacity(items.len());
                for item in items {
                    let (key, value) = item.split_once(": ").ok_or(Bail)?;
                    let value = value.trim_matches(' ');
                    if split_key(&format!("{key}:")).is_none() || !plain_ok(value, true) {
                        return Err(Bail);
                    }
                    pairs.push((key, value));
                }
                Ok(Some(Node::FlowMap(pairs)))
            }
        }
        _ => {
            let plain = strip_comment(t).trim_end_matches(' ');
            if plain.is_empty() {
                Ok(None)
            } else if plain_ok(plain, false) {
                Ok(Some(Node::Plain(plain)))
            } else {
                Err(Bail)
            }
        }
    }
}

/// The deserializer of one value.
struct Value<'r, 'a> {
    reader: &'r mut Reader<'a>,
    node: Pending<'a>,
}

impl<'a> Value<'_, 'a> {
    fn node(&mut self) -> Result<Node<'a>> {
        let (parent, same) = match self.node {
            Pending::Scalar(text) => return Ok(Node::Plain(text)),
            Pending::Inline { text, parent, same } => match inline(text)? {
                Some(node) => return Ok(node),
                None => (parent, same),
            },
            Pending::Block { parent, same } => (parent, same),
        };
        let Some(line) = self.reader.peek()? else { return Ok(Node::Plain("")) };
        let deeper = line.indent.cast_signed() > parent;
        if deeper || (same && line.indent.cast_signed() == parent && seq_item(line.body).is_some()) {
            if seq_item(line.body).is_some() {
                return Ok(Node::BlockSeq(line.indent));
            }
            if deeper && split_key(line.body).is_some() {
                return Ok(Node::BlockMap(line.indent, None));
            }
            // A scalar on the next lines (multi-line): not handled.
            return Err(Bail);
        }
        Ok(Node::Plain(""))
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn as_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Decimal digits without a leading zero, as YAML reads an integer.
fn as_u64(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// `digits.digits`, as YAML reads a float.
fn as_f64(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(whole) && digits(fraction)).then(|| text.parse().ok()).flatten()
}

/// Whether `serde_yaml` would read this plain scalar as a string: it is
/// not null, a bool or a number in any of YAML's spellings.
fn surely_string(text: &str) -> bool {
    let unsigned = text.trim_start_matches(['+', '-']);
    !is_null(text)
        && as_bool(text).is_none()
        && text.parse::<f64>().is_err()
        && !unsigned.starts_with('.')
        && !unsigned.starts_with("0x")
        && !unsigned.starts_with("0o")
        && !unsigned.starts_with("0b")
}

macro_rules! bail {
    ($($name:ident)*) => {
        $(fn $name<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
            Err(Bail)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Value<'_, 'de> {
    type Error = Bail;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        match self.node()? {
            Node::Plain(text) => {
                if is_null(text) {
                    visitor.visit_unit()
                } else if let Some(b) = as_bool(text) {
                    visitor.visit_bool(b)
                } else if let Some(n) = as_u64(text) {
                    visitor.visit_u64(n)
                } else if let Some(f) = as_f64(text) {
                    visitor.visit_f64(f)
                } else if surely_string(text) {
                    visitor.visit_borrowed_str(text)
                } else {
                    Err(Bail)
                }
            }
            Node::Quoted(text) => visitor.visit_borrowed_str(text),
            node => self.collection(node, visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        match self.node()? {
            // An empty value is a null: leave it to serde_yaml.
            Node::Plain("") => Err(Bail),
            Node::Plain(text) | Node::Quoted(text) => visitor.visit_borrowed_str(text),
            _ => Err(Bail),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        let node = self.node()?;
        if matches!(node, Node::Plain(text) if is_null(text)) {
            return visitor.visit_none();
        }
        visitor.visit_some(Resolved { reader: self.reader, node })
    }

    fn deserialize_bool<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        match self.node()? {
            Node::Plain(text) => visitor.visit_bool(as_bool(text).ok_or(Bail)?),
            _ => Err(Bail),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        match self.node()? {
            Node::Plain(text) => visitor.visit_u64(as_u64(text).ok_or(Bail)?),
            _ => Err(Bail),
        }
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        match self.node()? {
            Node::Plain(text) => {
                if let Some(n) = as_u64(text) {
                    visitor.visit_u64(n)
                } else {
                    visitor.visit_f64(as_f64(text).ok_or(Bail)?)
                }
            }
            _ => Err(Bail),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        match self.node()? {
            node @ (Node::FlowSeq(_) | Node::BlockSeq(_)) => self.collection(node, visitor),
            _ => Err(Bail),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        match self.node()? {
            node @ (Node::FlowMap(_) | Node::BlockMap(..)) => self.collection(node, visitor),
            _ => Err(Bail),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.node()? {
            Node::Plain(text) | Node::Quoted(text) if !text.is_empty() => {
                visitor.visit_enum(BorrowedStrDeserializer::<Bail>::new(text))
            }
            _ => Err(Bail),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value> {
        Err(Bail)
    }

    bail! { deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_char
    deserialize_bytes deserialize_byte_buf deserialize_unit }
}

impl<'a> Value<'_, 'a> {
    fn collection<V: Visitor<'a>>(self, node: Node<'a>, visitor: V) -> Result<V::Value> {
        match node {
            Node::FlowSeq(items) => visitor.visit_seq(FlowSeq { items: items.into_iter(), reader: self.reader }),
            Node::FlowMap(pairs) => {
                visitor.visit_map(FlowMap { pairs: pairs.into_iter(), value: None, reader: self.reader })
            }
            Node::BlockSeq(indent) => visitor.visit_seq(BlockSeq { reader: self.reader, indent }),
            Node::BlockMap(indent, first) => {
                visitor.visit_map(BlockMap { reader: self.reader, indent, first, value: None })
            }
            Node::Plain(_) | Node::Quoted(_) => Err(Bail),
        }
    }
}

/// A value whose node is known already (after `deserialize_option`).
struct Resolved<'r, 'a> {
    reader: &'r mut Reader<'a>,
    node: Node<'a>,
}

impl<'de> de::Deserializer<'de> for Resolved<'_, 'de> {
    type Error = Bail;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Plain(text) => Value { reader: self.reader, node: Pending::Scalar(text) }.deserialize_any(visitor),
            Node::Quoted(text) => visitor.visit_borrowed_str(text),
            node => Value { reader: self.reader, node: Pending::Scalar("") }.collection(node, visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Plain(text) | Node::Quoted(text) if !text.is_empty() => visitor.visit_borrowed_str(text),
            _ => Err(Bail),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.node {
            Node::Plain(text) | Node::Quoted(text) => {
                Value { reader: self.reader, node: Pending::Scalar(text) }.deserialize_enum(name, variants, visitor)
            }
            _ => Err(Bail),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Plain(text) => visitor.visit_u64(as_u64(text).ok_or(Bail)?),
            _ => Err(Bail),
        }
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Plain(text) => Value { reader: self.reader, node: Pending::Scalar(text) }.deserialize_f64(visitor),
            _ => Err(Bail),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            node @ (Node::FlowSeq(_) | Node::BlockSeq(_)) => {
                Value { reader: self.reader, node: Pending::Scalar("") }.collection(node, visitor)
            }
            _ => Err(Bail),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            node @ (Node::FlowMap(_) | Node::BlockMap(..)) => {
                Value { reader: self.reader, node: Pending::Scalar("") }.collection(node, visitor)
            }
            _ => Err(Bail),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        // `Option<Option<T>>`: not in the config model.
        Err(Bail)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value> {
        Err(Bail)
    }

    bail! { deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_char
    deserialize_bytes deserialize_byte_buf deserialize_unit }
}

struct FlowSeq<'r, 'a> {
    items: std::vec::IntoIter<&'a str>,
    reader: &'r mut Reader<'a>,
}

impl<'de> SeqAccess<'de> for FlowSeq<'_, 'de> {
    type Error = Bail;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let Some(item) = self.items.next() else { return Ok(None) };
        seed.deserialize(Value { reader: self.reader, node: Pending::Scalar(item) }).map(Some)
    }
}

struct FlowMap<'r, 'a> {
    pairs: std::vec::IntoIter<(&'a str, &'a str)>,
    value: Option<&'a str>,
    reader: &'r mut Reader<'a>,
}

impl<'de> MapAccess<'de> for FlowMap<'_, 'de> {
    type Error = Bail;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some((key, value)) = self.pairs.next() else { return Ok(None) };
        self.value = Some(value);
        seed.deserialize(Value { reader: self.reader, node: Pending::Scalar(key) }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let value = self.value.take().ok_or(Bail)?;
        seed.deserialize(Value { reader: self.reader, node: Pending::Scalar(value) })
    }
}

struct BlockSeq<'r, 'a> {
    reader: &'r mut Reader<'a>,
    indent: usize,
}

impl<'de> SeqAccess<'de> for BlockSeq<'_, 'de> {
    type Error = Bail;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let Some(line) = self.reader.peek()? else { return Ok(None) };
        if line.indent < self.indent {
            return Ok(None);
        }
        if line.indent > self.indent {
            return Err(Bail);
        }
        let Some(rest) = seq_item(line.body) else { return Ok(None) };
        self.reader.take();
        let parent = self.indent.cast_signed();
        let text = rest.trim_start_matches(' ');
        if seq_item(text).is_some() {
            return Err(Bail); // `- - a`
        }
        if split_key(text).is_some() {
            // `- key: value`: a mapping whose keys line up with this one.
            let indent = self.indent + 1 + (rest.len() - text.len());
            let map = BlockMap { reader: &mut *self.reader, indent, first: Some(text), value: None };
            return seed.deserialize(MapValue(map)).map(Some);
        }
        seed.deserialize(Value { reader: self.reader, node: Pending::Inline { text: rest, parent, same: false } })
            .map(Some)
    }
}

struct BlockMap<'r, 'a> {
    reader: &'r mut Reader<'a>,
    indent: usize,
    first: Option<&'a str>,
    value: Option<&'a str>,
}

impl<'de> MapAccess<'de> for BlockMap<'_, 'de> {
    type Error = Bail;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let body = if let Some(body) = self.first.take() {
            body
        } else {
            let Some(line) = self.reader.peek()? else { return Ok(None) };
            if line.indent < self.indent {
                return Ok(None);
            }
            if line.indent > self.indent || seq_item(line.body).is_some() {
                return Err(Bail);
            }
            self.reader.take();
            line.body
        };
        let (key, rest) = split_key(body).ok_or(Bail)?;
        self.value = Some(rest);
        seed.deserialize(Value { reader: self.reader, node: Pending::Scalar(key) }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let text = self.value.take().ok_or(Bail)?;
        let parent = self.indent.cast_signed();
        seed.deserialize(Value { reader: self.reader, node: Pending::Inline { text, parent, same: true } })
    }
}

/// A mapping that starts on a sequence item's line, as a deserializer.
struct MapValue<'r, 'a>(BlockMap<'r, 'a>);

impl<'de> de::Deserializer<'de> for MapValue<'_, 'de> {
    type Error = Bail;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_map(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_some(self)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_map(self.0)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_map(self.0)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_map(self.0)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value> {
        Err(Bail)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value> {
        Err(Bail)
    }

    bail! { deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_u8
    deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32 deserialize_f64 deserialize_char
    deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
    deserialize_seq deserialize_identifier }
}
