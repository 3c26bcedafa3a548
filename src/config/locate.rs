//! Finds where a value sits in a YAML file, for error messages.
//!
//! serde gives values without positions, so when validation has problems to
//! report, the file is read once more with an event parser that records the
//! line and column of every key and value by path (`members[3].email`). This
//! runs only on the error path: loading a valid file never pays for it.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// Key and value positions by path.
#[derive(Debug, Default)]
pub struct Locations {
    keys: HashMap<String, Position>,
    values: HashMap<String, Position>,
    /// Whether the event parser read the whole file (it is stricter than
    /// `serde_yaml`, so it may stop part way through a file that loaded).
    pub complete: bool,
}

impl Locations {
    /// Indexes `source`. Where the event parser stops on an error, the index
    /// holds what came before, and `complete` is false.
    #[must_use]
    pub fn index(source: &str) -> Self {
        let mut builder = Builder::default();
        let source = breaks_as_newlines(source);
        let mut parser = Parser::new_from_str(&source);
        let complete = parser.load(&mut builder, false).is_ok();
        Self { complete, ..builder.locations }
    }

    /// Where the value at `path` starts.
    #[must_use]
    pub fn value(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// Where the key that ends `path` is written (falls back to the value).
    #[must_use]
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }

    /// The value's position, or the nearest enclosing path's.
    #[must_use]
    pub fn nearest(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(pos) = self.value(path) {
                return Some(pos);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

/// The characters `serde_yaml` (YAML 1.1, libyaml) counts as line breaks
/// besides `\n`: a lone `\r`, NEL, and the Unicode line and paragraph
/// separators. YAML 1.2, which the event parser follows, does not.
const OTHER_BREAKS: [char; 4] = ['\r', '\u{85}', '\u{2028}', '\u{2029}'];

/// The lines of `text` as `serde_yaml` numbers them, so that a position
/// from either parser finds its snippet.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(|c| c == '\n' || OTHER_BREAKS.contains(&c)) {
            None => {
                rest = None;
                (!current.is_empty()).then_some(current)
            }
            Some(at) => {
                let width =
                    if current[at..].starts_with("\r\n") { 2 } else { current[at..].chars().next()?.len_utf8() };
                rest = Some(&current[at + width..]);
                Some(&current[..at])
            }
        }
    })
}

/// A file's lines, as `serde_yaml` numbers them, for finding snippets and
/// keeping positions inside the file; built once per file with problems.
pub struct Lines<'a>(Vec<&'a str>);

impl<'a> Lines<'a> {
    /// Splits `text` into lines.
    #[must_use]
    pub fn new(text: &'a str) -> Self {
        Self(lines(text).collect())
    }

    /// The line numbered `line` (from 1).
    #[must_use]
    pub fn get(&self, line: usize) -> Option<&'a str> {
        self.0.get(line.checked_sub(1)?).copied()
    }

    /// `position` moved inside the text: `serde_yaml` marks the end of input
    /// on the line after the last when the file does not end with a
    /// newline, and a position must point at something that can be shown.
    #[must_use]
    pub fn within(&self, position: Position) -> Position {
        let line = position.line.clamp(1, self.0.len().max(1));
        let width = self.get(line).map_or(0, |l| l.chars().count());
        let column = if line < position.line { width + 1 } else { position.column.clamp(1, width + 1) };
        Position { line, column }
    }
}

/// [`Lines::within`] for one position.
#[must_use]
pub fn within(text: &str, position: Position) -> Position {
    Lines::new(text).within(position)
}

/// `source` with every line break `serde_yaml` sees written as `\n` (and
/// `\r\n` kept), so the event parser numbers lines as `serde_yaml` does.
fn breaks_as_newlines(source: &str) -> std::borrow::Cow<'_, str> {
    if !source.contains(OTHER_BREAKS) {
        return std::borrow::Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => out.push('\r'),
            c if OTHER_BREAKS.contains(&c) => out.push('\n'),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Where a file that `serde_yaml` refuses without a position goes wrong:
/// where the event parser stops with an error, or else where a second
/// document starts (`serde_yaml` reads one document, and says only that
/// there are more).
#[must_use]
pub fn trouble(source: &str) -> Option<Position> {
    struct Documents(Vec<Marker>);

    impl MarkedEventReceiver for Documents {
        fn on_event(&mut self, event: Event, mark: Marker) {
            if event == Event::DocumentStart {
                self.0.push(mark);
            }
        }
    }

    let mut documents = Documents(Vec::new());
    let source = breaks_as_newlines(source);
    match Parser::new_from_str(&source).load(&mut documents, true) {
        Err(err) => Some(position(*err.marker())),
        Ok(()) => documents.0.get(1).map(|mark| position(*mark)),
    }
}

/// Where the key or value at `path` is, as `serde_yaml` itself sees the
/// file: for the files the event parser above gives up on part way (it is
/// stricter than `serde_yaml`, e.g. about indentation inside flow
/// collections), so a problem in the part it did not reach still gets a
/// position. One pass over the file per call, so only a fallback.
#[must_use]
pub fn seek(source: &str, path: &str, at_key: bool) -> Option<Position> {
    let steps = steps(path)?;
    let deserializer = serde_yaml::Deserializer::from_str(source);
    let err = Seek { steps: &steps, at_key }.deserialize(deserializer).err()?;
    // Only the marker error is a position found; any other is the file's
    // own. serde_yaml puts the path in front of the message.
    err.to_string().contains(FOUND).then_some(())?;
    err.location().map(|l| Position { line: l.line(), column: l.column() })
}

/// The error [`Seek`] raises at its target, so `serde_yaml` marks it.
const FOUND: &str = "memberctl: found";

/// One step of a path (`members[3].email`): a key or a list index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A list index.
    Index(usize),
}

/// The steps of `path` (`members[3].email` → `members`, 3, `email`);
/// `None` when an index is not a number.
#[must_use]
pub fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, indexes) = part.split_once('[').map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            steps.push(Step::Index(index.trim_end_matches(']').parse().ok()?));
        }
    }
    Some(steps)
}

/// Walks to a path and fails there: `serde_yaml` gives the error the
/// position of the node being read.
struct Seek<'s, 'a> {
    steps: &'s [Step<'a>],
    at_key: bool,
}

impl<'de> DeserializeSeed<'de> for Seek<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.steps.split_first() {
            None => Err(de::Error::custom(FOUND)),
            Some((Step::Index(target), rest)) => {
                for _ in 0..*target {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        return Ok(());
                    }
                }
                seq.next_element_seed(Seek { steps: rest, at_key: self.at_key })?;
                Ok(())
            }
            Some((Step::Key(_), _)) => Ok(()),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(target), rest)) = self.steps.split_first() else {
            return if self.steps.is_empty() { Err(de::Error::custom(FOUND)) } else { Ok(()) };
        };
        let key_is_target = rest.is_empty() && self.at_key;
        while let Some(key) = map.next_key_seed(KeySeek { target, fail: key_is_target })? {
            if key {
                return map.next_value_seed(Seek { steps: rest, at_key: self.at_key });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

impl Seek<'_, '_> {
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.steps.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

/// Reads a key and answers whether it is `target`; fails on it when the
/// key itself is what is sought.
struct KeySeek<'a> {
    target: &'a str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeek<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeek<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        if key == self.target && self.fail {
            return Err(E::custom(FOUND));
        }
        Ok(key == self.target)
    }

    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

enum Frame {
    Mapping {
        path: String,
        key: Option<String>,
    },
    Sequence {
        path: String,
        index: usize,
    },
    /// Inside a complex (non-scalar) mapping key: nothing to record.
    Skip {
        depth: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    locations: Locations,
}

fn position(mark: Marker) -> Position {
    Position { line: mark.line(), column: mark.col() + 1 }
}

/// `parent.key`, or `key` at the top.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// Handles a node (scalar, alias, or the start of a collection) and
    /// answers the path it sits at, when it is a value.
    fn node(&mut self, scalar: Option<&str>, mark: Marker, opens: bool) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Skip { depth }) => {
                if opens {
                    *depth += 1;
                }
                None
            }
            Some(Frame::Mapping { path, key }) => {
                if key.is_none() {
                    if let Some(text) = scalar {
                        let child = join(path, text);
                        self.locations.keys.insert(child, position(mark));
                        *key = Some(text.to_owned());
                    } else {
                        *key = Some(String::from("?"));
                        if opens {
                            self.stack.push(Frame::Skip { depth: 1 });
                        }
                    }
                    None
                } else {
                    let child = join(path, key.as_deref().unwrap_or("?"));
                    *key = None;
                    Some(child)
                }
            }
            Some(Frame::Sequence { path, index }) => {
                let child = format!("{path}[{index}]");
                *index += 1;
                Some(child)
            }
        }
    }

    fn close(&mut self) {
        if let Some(Frame::Skip { depth }) = self.stack.last_mut() {
            *depth -= 1;
            if *depth == 0 {
                self.stack.pop();
            }
            return;
        }
        self.stack.pop();
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => {
                if let Some(path) = self.node(Some(&text), mark, false) {
                    self.locations.values.insert(path, position(mark));
                }
            }
            Event::Alias(_) => {
                if let Some(path) = self.node(None, mark, false) {
                    self.locations.values.insert(path, position(mark));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_mapping = matches!(event, Event::MappingStart(..));
                if let Some(path) = self.node(None, mark, true) {
                    self.locations.values.insert(path.clone(), position(mark));
                    self.stack.push(if is_mapping {
                        Frame::Mapping { path, key: None }
                    } else {
                        Frame::Sequence { path, index: 0 }
                    });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => self.close(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values_by_path() {
        let src = "version: 1\nmembers:\n  - email: a@x.io\n    roles: [member]\n  - email: b@x.io\n";
        let loc = Locations::index(src);
        assert_eq!(loc.value("version"), Some(Position { line: 1, column: 10 }));
        assert_eq!(loc.key("members[0].roles"), Some(Position { line: 4, column: 5 }));
        assert_eq!(loc.value("members[1].email"), Some(Position { line: 5, column: 12 }));
        assert_eq!(loc.value("members[0].roles[0]"), Some(Position { line: 4, column: 13 }));
        assert_eq!(loc.nearest("members[1].nothing").map(|p| p.line), Some(5));
    }

    // Regression: #9, a file serde_yaml reads but the event parser stops in
    // part way still gets positions for problems past that point.
    #[test]
    fn positions_past_where_the_event_parser_stops_are_found_by_seeking() {
        let src = "roles:\n  member: { a:\n 1 }\nmembers:\n  - email: x\n    primary_group: e\n";
        let index = Locations::index(src);
        assert!(!index.complete);
        assert_eq!(index.value("members[0].primary_group"), None);
        assert_eq!(seek(src, "members[0].primary_group", false), Some(Position { line: 6, column: 20 }));
        assert_eq!(seek(src, "members[0].primary_group", true), Some(Position { line: 6, column: 5 }));
        assert_eq!(seek(src, "roles.member.a", false), Some(Position { line: 3, column: 2 }));
        assert_eq!(seek(src, "members[3]", false), None);
        assert_eq!(seek(src, "nothing.here", true), None);
        assert!(Locations::index("a: 1\n").complete);
    }

    // Regression: #9, NEL, the Unicode separators and a lone CR end a line
    // for serde_yaml; snippets and the event parser must count them too.
    #[test]
    fn lines_are_counted_as_serde_yaml_counts_them() {
        let text = "a: 1\r\nb: 2\u{85}c: 3\rd:\u{2028}  - x\u{2029}e: 5\n";
        let all: Vec<&str> = lines(text).collect();
        assert_eq!(all, ["a: 1", "b: 2", "c: 3", "d:", "  - x", "e: 5"]);
        let index = Locations::index(text);
        assert_eq!(index.value("c"), Some(Position { line: 3, column: 4 }));
        assert_eq!(index.value("d[0]"), Some(Position { line: 5, column: 5 }));
        assert_eq!(index.value("e"), Some(Position { line: 6, column: 4 }));
    }

    // Regression: #9, an error at the end of a file without a final newline
    // pointed at a line after the last.
    #[test]
    fn positions_are_kept_inside_the_text() {
        let at = |line, column| Position { line, column };
        assert_eq!(within("a: [b", at(2, 1)), at(1, 6));
        assert_eq!(within("a: 1\nb: [\n", at(3, 1)), at(2, 5));
        assert_eq!(within("a: 1\n", at(1, 3)), at(1, 3));
        assert_eq!(within("a: 1\n", at(1, 9)), at(1, 5));
        assert_eq!(within("", at(1, 1)), at(1, 1));
    }

    #[test]
    fn a_second_document_is_where_the_trouble_is() {
        assert_eq!(trouble("a: 1\n---\nb: 2\n").map(|p| p.line), Some(2));
        assert_eq!(trouble("a: 1\n"), None);
    }
}
