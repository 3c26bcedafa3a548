//! Finds where a value sits in a YAML file, for error messages.
//!
//! serde gives values without positions, so when validation has problems to
//! report, the file is read once more with an event parser that records the
//! line and column of every key and value by path (`members[3].email`). This
//! runs only on the error path: loading a valid file never pays for it.

use std::collections::HashMap;

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
}

impl Locations {
    /// Indexes `source`. A file the event parser cannot read yields an empty
    /// index (serde has already reported that file's syntax error).
    #[must_use]
    pub fn index(source: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(source);
        let _ = parser.load(&mut builder, false);
        builder.locations
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
}
