//! YAML refused before the parsers see it, because of what it would cost
//! them: nesting so deep that libyaml's scanner (under `serde_yaml`) takes
//! time quadratic in the depth before its recursion limit applies (a
//! 200 KB file took 33 s), and aliases that expand to so many nodes that
//! holding the file as a `serde_yaml::Value` (unknown keys, salvage)
//! exhausts memory. `serde_yaml`'s own limits count recursion and alias
//! jumps, not these.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

use super::locate::Position;

/// The deepest nesting of flow collections (`[`, `{`) a config may use;
/// real ones use two or three.
pub const MAX_FLOW_DEPTH: usize = 128;

/// The deepest nesting of any kind, checked with the aliases (`serde_yaml`
/// refuses deeper nesting itself, but only after reading the events).
pub const MAX_DEPTH: usize = 128;

/// The most nodes a small config's aliases may stand for, all together
/// (see [`aliased_limit`]): far beyond what a real file shares through
/// anchors (a `defaults` block, a list of roles), and some 100 MB as
/// `serde_yaml` values.
pub const MAX_ALIASED_NODES: u64 = 1_000_000;

/// Why `text` is refused, and where, if it is.
#[must_use]
pub fn refusal(text: &str) -> Option<(String, Position)> {
    if let Some(at) = too_deep(text) {
        return Some((format!("the YAML nests flow collections more than {MAX_FLOW_DEPTH} levels deep"), at));
    }
    // Only a file with an anchor can expand.
    if text.contains('&') {
        if let Some(at) = expands_too_far(text) {
            return Some((
                format!(
                    "the YAML's aliases stand for more than {} nodes, or it nests more than {MAX_DEPTH} levels deep",
                    aliased_limit(text)
                ),
                at,
            ));
        }
    }
    None
}

/// Where flow nesting first goes past [`MAX_FLOW_DEPTH`]: one pass over
/// the bytes, skipping quoted scalars and comments. A `[` or `{` opens a
/// collection inside a flow collection, or where a value starts in block
/// context (after `: `, `- `, or at the start of a line); elsewhere it is
/// part of a plain scalar.
fn too_deep(text: &str) -> Option<Position> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    // The last character on this line that is not a space, outside quotes.
    let mut before: Option<char> = None;
    // The character just before, space or not: a `#` after a space (or at
    // the start of a line) starts a comment.
    let mut previous = ' ';
    for c in text.chars() {
        column += 1;
        let after_space = previous.is_whitespace();
        previous = c;
        if c == '\n' {
            (line, column, comment, before) = (line + 1, 0, false, None);
            continue;
        }
        if comment {
            continue;
        }
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if open == '"' && c == '\\' {
                escaped = true;
            } else if c == open {
                quote = None;
                before = Some(c);
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '#' if after_space => comment = true,
            '[' | '{' if depth > 0 || matches!(before, None | Some(':' | '-' | '[' | '{' | ',')) => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(Position { line, column });
                }
            }
            ']' | '}' if depth > 0 => depth -= 1,
            _ => {}
        }
        if !c.is_whitespace() {
            before = Some(c);
        }
    }
    None
}

/// Where the aliases first stand for more than [`aliased_limit`] nodes,
/// each alias counted as the nodes its anchor holds (aliases within
/// included), or where nesting of any kind passes [`MAX_DEPTH`]. Events are
/// taken one at a time (the event parser's own loader recurses once per
/// level, and a deeply nested block would overflow the stack).
fn expands_too_far(text: &str) -> Option<Position> {
    let limit = aliased_limit(text);
    // Nodes of each anchor, once its node is complete.
    let mut anchored: HashMap<usize, u64> = HashMap::new();
    // Open collections: their anchor and the nodes counted in them.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut aliased = 0u64;
    let add = |open: &mut Vec<(usize, u64)>, nodes: u64| {
        if let Some((_, inner)) = open.last_mut() {
            *inner = inner.saturating_add(nodes);
        }
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        // A file the event parser cannot read is for serde_yaml to refuse.
        let Ok((event, mark)) = parser.next_token() else { return None };
        let at = || Some(Position { line: mark.line(), column: mark.col() + 1 });
        match event {
            Event::StreamEnd => return None,
            Event::Scalar(_, _, anchor, _) => {
                if anchor > 0 {
                    anchored.insert(anchor, 1);
                }
                add(&mut open, 1);
            }
            Event::Alias(anchor) => {
                let nodes = anchored.get(&anchor).copied().unwrap_or(1);
                add(&mut open, nodes);
                aliased = aliased.saturating_add(nodes);
                if aliased > limit {
                    return at();
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, 1));
                if open.len() > MAX_DEPTH {
                    return at();
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, nodes)) = open.pop() {
                    if anchor > 0 {
                        anchored.insert(anchor, nodes);
                    }
                    add(&mut open, nodes);
                }
            }
            _ => {}
        }
    }
}

/// The most nodes a file's aliases may stand for: [`MAX_ALIASED_NODES`], or
/// 16 a byte of the file when that is more (a large file that shares a role
/// list through an anchor in every member; a bomb grows far faster than its
/// text).
fn aliased_limit(text: &str) -> u64 {
    MAX_ALIASED_NODES.max(16 * text.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::{expands_too_far, too_deep, MAX_FLOW_DEPTH};

    #[test]
    fn deep_flow_nesting_is_found_in_one_pass() {
        let deep = format!("version: 1\nmembers: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let at = too_deep(&deep).expect("too deep");
        assert_eq!((at.line, at.column), (2, 10 + MAX_FLOW_DEPTH));
        let fine = format!("members: {}{}\n", "[".repeat(MAX_FLOW_DEPTH), "]".repeat(MAX_FLOW_DEPTH));
        assert_eq!(too_deep(&fine), None);
        // Brackets inside scalars, quotes and comments open nothing.
        let scalars =
            "members:\n".to_owned() + &"  - { email: \"a[[[@x.io\", name: 'B[{{' } # [[[[\n  - name: x[y\n".repeat(200);
        assert_eq!(too_deep(&scalars), None);
    }

    #[test]
    fn aliases_are_counted_as_what_they_expand_to() {
        let bomb = format!("zzz: &a [{}]\nyyy: [{}]\n", vec!["x"; 5_000].join(","), vec!["*a"; 30_000].join(","));
        assert!(expands_too_far(&bomb).is_some());
        let fine = "defaults: &d { roles: [member] }\nother: *d\n";
        assert_eq!(expands_too_far(fine), None);
        // Many nodes, none of them through an alias: a large file with an
        // `&` in a note is not refused.
        let large = format!("note: R&D\nmembers: [{}]\n", vec!["x"; 50_000].join(","));
        assert_eq!(expands_too_far(&large), None);
        // A thousand aliases of a thousand-item list are a million nodes.
        let wide = format!("zzz: &a [{}]\nyyy: [{}]\n", vec!["x"; 1_000].join(","), vec!["*a"; 1_001].join(","));
        assert!(expands_too_far(&wide).is_some());
        // A review found the event parser's loader recursed once per level:
        // deep block nesting with an anchor overflowed the stack.
        let deep = format!("a: &x 1\nb:\n{}1\n", "- ".repeat(100_000));
        assert!(expands_too_far(&deep).is_some());
    }
}
