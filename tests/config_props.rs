//! The fast YAML reader (`config/fast_yaml.rs`) proven against `serde_yaml`
//! (issue #9): wherever it accepts a file, it must read what `serde_yaml`
//! reads, and the files memberctl is really given must take the fast path.

use std::fmt::Write as _;
use std::path::Path;

use memberctl::config::{parse_fast, parse_general, parse_in_pieces};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

use crate::support::bench_configs::{apply_config, plan_config};

/// Plain scalars where YAML's typing, indicators and comments get subtle:
/// id-like numbers, null- and bool-like words, colons, hashes, Unicode.
const TRICKY: &[&str] = &[
    "Jane Doe",
    "jane.doe@example.com",
    "0123",
    "007",
    "0",
    "-0",
    "+1",
    "-3",
    "1e5",
    "1E5",
    "1e+5",
    "1.5e3",
    "0x1F",
    "0o17",
    "0b101",
    "1_000",
    "1.",
    ".5",
    "1.0",
    "00.5",
    ".inf",
    "-.inf",
    ".NaN",
    "nan",
    "inf",
    "12:30:00",
    "1:30",
    "2001-12-14",
    "true",
    "True",
    "TRUE",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "null",
    "Null",
    "NULL",
    "~",
    "nULL",
    "<<",
    "=",
    "a#b",
    "a #b",
    "C#/.NET",
    "x: y",
    "x:y",
    "x:",
    "-x",
    "- x",
    "?x",
    "@team",
    "`tick`",
    "%pct",
    "!tag",
    "&anchor",
    "*alias",
    "it's",
    "say \"hi\"",
    "back\\slash",
    "Zoë Ågren",
    "日本語",
    "emoji 🎉",
    "ÿ",
    "a, b",
    "[x]",
    "{x}",
    "a]b",
    "a}b",
    "69baa36beddb9f0012fdf101",
    "42db2b59-b9c6-4705-a0d9-916e597cd4aa",
    "+1 (555) 123-4567",
    "https://api.example.com/v1",
    "30s",
    "14d",
    "trailing ",
    " leading",
    "",
    "tab\there",
    "line\nbreak",
    "nel\u{85}x",
    "0X1F",
    "0O17",
    "0x",
    "0x1g",
    "0x_1F",
    "1__0",
    "+.5",
    "-.5",
    "1e",
    "e5",
    "1e-5",
    "0e0",
    "12e03",
    "+inf",
    "-inf",
    ".Inf",
    ".INF",
    "Infinity",
    "NaN",
    ".nan",
    "0.0.1",
    "1,000",
    "1 000",
    "--1",
    "١٢",
    "１",
    "tRUE",
    "Yes",
    "NO",
    "~x",
    "-",
    "?",
    ":",
    "a:",
    "a :b",
    "#",
    "a\\",
    "'",
    "\"",
    "''",
    "a'",
    "a\"",
    "ls\u{2028}x",
];

/// Keys: known ones of every level, typos, and keys YAML reads as non-strings.
const KEYS: &[&str] = &[
    "email",
    "name",
    "first_name",
    "last_name",
    "phone",
    "note",
    "roles",
    "plans",
    "groups",
    "primary_group",
    "positions",
    "manager_id",
    "providers",
    "method",
    "password_env",
    "existing_user",
    "nmae",
    "x-custom",
    "a.b",
    "_private",
    "1",
    "0x1",
    "true",
    "null",
    "~",
    "Email",
];

/// How a scalar is written.
#[derive(Clone, Copy, Debug)]
enum Quote {
    Plain,
    Single,
    Double,
}

fn double_quoted(text: &str, fancy: bool) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str(if fancy { "\\t" } else { "\t" }),
            c if fancy && !c.is_ascii() => {
                write!(out, "\\u{:04X}", u32::from(c) & 0xffff).expect("writing to a String");
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn scalar(text: &str, quote: Quote, fancy: bool) -> String {
    match quote {
        Quote::Plain => text.to_owned(),
        Quote::Single => format!("'{}'", text.replace('\'', "''")),
        Quote::Double => double_quoted(text, fancy),
    }
}

/// A value in a generated file.
#[derive(Clone, Debug)]
enum Node {
    Scalar(String, Quote, bool),
    Seq(Vec<Node>, bool),
    Map(Vec<(String, Node)>, bool),
}

/// Layout choices: indentation steps, comments, spacing.
#[derive(Clone, Debug)]
struct Style {
    map_step: usize,
    seq_step: usize,
    item_gap: usize,
    comments: bool,
    blank_lines: bool,
    space_after_colon: usize,
    flow_spaces: bool,
    /// Every this many lines, one is shifted by a space (0: none).
    jitter: usize,
}

fn style() -> impl Strategy<Value = Style> {
    let jitter = prop_oneof![4 => Just(0usize), 1 => 2..=7usize];
    (1..=4usize, 0..=4usize, 1..=3usize, any::<bool>(), any::<bool>(), 1..=2usize, any::<bool>(), jitter).prop_map(
        |(map_step, seq_step, item_gap, comments, blank_lines, space_after_colon, flow_spaces, jitter)| Style {
            map_step,
            seq_step,
            item_gap,
            comments,
            blank_lines,
            space_after_colon,
            flow_spaces,
            jitter,
        },
    )
}

/// Values a real file holds, by the field they fit.
const NAMES: &[&str] = &["member", "moderator", "engineering", "community", "workforce", "sandbox", "pro"];
const TEXTS: &[&str] = &[
    "Jane Doe",
    "Maryam Smith",
    "kim@example.com",
    "Welcome aboard and glad you are here.",
    "Zoë Ågren",
    "+1 (555) 123-4567",
    "bbc5418c-8d81-4756-b3e6-84e1e87f06c3",
];
const METHODS: &[&str] = &["invite", "direct"];
const TYPES: &[&str] = &["networked", "aptly", "sandbox"];
const NUMBERS: &[&str] = &["1", "4", "100", "0.5", "2.25", "30s"];

/// A scalar from `pool`, or, `wild` times in 12, a tricky or random one.
fn text(pool: &'static [&'static str], wild: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        12 => proptest::sample::select(pool).prop_map(str::to_owned),
        3 * wild => proptest::sample::select(TRICKY).prop_map(str::to_owned),
        wild => "[a-zA-Z0-9 .#:@'\"_-]{0,12}",
        wild => "\\PC{0,6}",
    ]
}

fn quote() -> impl Strategy<Value = Quote> {
    prop_oneof![8 => Just(Quote::Plain), 1 => Just(Quote::Single), 1 => Just(Quote::Double)]
}

fn leaf(pool: &'static [&'static str], wild: u32) -> impl Strategy<Value = Node> {
    (text(pool, wild), quote(), any::<bool>()).prop_map(|(t, q, fancy)| Node::Scalar(t, q, fancy))
}

fn key(wild: u32) -> impl Strategy<Value = String> {
    prop_oneof![12 => proptest::sample::select(KEYS).prop_map(str::to_owned), wild => text(NAMES, wild)]
}

/// Any value, for unknown keys (which take anything).
fn node(wild: u32) -> impl Strategy<Value = Node> {
    leaf(TEXTS, wild).prop_recursive(3, 16, 4, move |inner| {
        prop_oneof![
            (proptest::collection::vec(inner.clone(), 0..4), flow()).prop_map(|(v, flow)| Node::Seq(v, flow)),
            (proptest::collection::vec((key(wild), inner), 0..4), flow()).prop_map(|(v, flow)| Node::Map(v, flow)),
        ]
    })
}

/// A list of catalog names, the shape `roles:` and friends take.
fn names(wild: u32) -> impl Strategy<Value = Node> {
    (proptest::collection::vec(leaf(NAMES, wild), 0..3), flow()).prop_map(|(v, flow)| Node::Seq(v, flow))
}

/// Pairs with their keys made unique, unless `keep_repeats`: a repeated key
/// is an error in both readers, so mostly it only makes a case decline.
fn mapping(mut pairs: Vec<(String, Node)>, flow: bool, keep_repeats: bool) -> Node {
    if !keep_repeats {
        let mut seen = std::collections::HashSet::new();
        pairs.retain(|(k, _)| seen.insert(k.clone()));
    }
    Node::Map(pairs, flow)
}

/// Flow style (`[a, b]`, `{k: v}`) a quarter of the time.
fn flow() -> impl Strategy<Value = bool> {
    proptest::bool::weighted(0.25)
}

/// Whether a mapping keeps repeated keys: `wild` times in 24.
fn repeats(wild: u32) -> impl Strategy<Value = bool> {
    proptest::bool::weighted(f64::from(wild) / 24.0)
}

/// A member: known fields with fitting values, some unknown ones.
fn member(wild: u32) -> impl Strategy<Value = Node> {
    let field = prop_oneof![
        4 => (proptest::sample::select(&["name", "note", "phone", "first_name", "manager_id"][..]), leaf(TEXTS, wild))
            .prop_map(|(k, v)| (k.to_owned(), v)),
        1 => leaf(METHODS, wild).prop_map(|v| ("method".to_owned(), v)),
        3 => (proptest::sample::select(&["roles", "plans", "groups", "providers"][..]), names(wild))
            .prop_map(|(k, v)| (k.to_owned(), v)),
        1 => (key(wild), node(wild)),
    ];
    (leaf(TEXTS, wild), proptest::collection::vec(field, 0..4), flow(), repeats(wild)).prop_map(
        |(email, mut fields, flow, keep)| {
            fields.insert(0, ("email".to_owned(), email));
            mapping(fields, flow, keep)
        },
    )
}

/// A provider: settings whose types are numbers, strings, enums and lists.
fn provider(wild: u32) -> impl Strategy<Value = Node> {
    let setting = prop_oneof![
        2 => leaf(TYPES, wild).prop_map(|v| ("type".to_owned(), v)),
        2 => (
            proptest::sample::select(&["batch_size", "rate_limit", "max_attempts", "concurrency", "timeout"][..]),
            leaf(NUMBERS, wild)
        )
            .prop_map(|(k, v)| (k.to_owned(), v)),
        1 => leaf(TEXTS, wild).prop_map(|v| ("base_url".to_owned(), v)),
        1 => names(wild).prop_map(|v| ("capabilities".to_owned(), v)),
    ];
    (proptest::collection::vec(setting, 1..4), flow(), repeats(wild)).prop_map(|(v, flow, keep)| mapping(v, flow, keep))
}

fn catalog(wild: u32) -> impl Strategy<Value = Node> {
    let ids = (proptest::collection::vec((text(NAMES, wild), leaf(TEXTS, wild)), 0..3), flow(), repeats(wild))
        .prop_map(|(v, flow, keep)| mapping(v, flow, keep));
    (proptest::collection::vec((text(NAMES, wild), ids), 0..3), flow(), repeats(wild))
        .prop_map(|(v, flow, keep)| mapping(v, flow, keep))
}

/// A whole file; `wild` (0 to 3) sets how often values are tricky.
fn file_with(wild: u32) -> impl Strategy<Value = Node> {
    let top = prop_oneof![
        2 => leaf(&["1"], wild).prop_map(|v| ("version".to_owned(), v)),
        2 => (proptest::collection::vec((text(NAMES, wild), provider(wild)), 0..3), flow(), repeats(wild))
            .prop_map(|(v, flow, keep)| ("providers".to_owned(), mapping(v, flow, keep))),
        1 => (proptest::sample::select(&["roles", "plans", "groups"][..]), catalog(wild))
            .prop_map(|(k, v)| (k.to_owned(), v)),
        1 => (
            proptest::collection::vec(
                prop_oneof![
                    leaf(TEXTS, wild).prop_map(|v| ("note".to_owned(), v)),
                    names(wild).prop_map(|v| ("providers".to_owned(), v)),
                    names(wild).prop_map(|v| ("roles".to_owned(), v)),
                ],
                0..3,
            ),
            flow(),
        )
            .prop_map(|(v, flow)| ("defaults".to_owned(), mapping(v, flow, false))),
        1 => leaf(NUMBERS, wild).prop_map(|v| ("safety".to_owned(), Node::Map(vec![("max_changes".to_owned(), v)], false))),
        4 => proptest::collection::vec(member(wild), 0..5).prop_map(|v| ("members".to_owned(), Node::Seq(v, false))),
        1 => (key(wild), node(wild)),
    ];
    (proptest::collection::vec(top, 0..6), repeats(wild)).prop_map(|(v, keep)| mapping(v, false, keep))
}

fn file() -> impl Strategy<Value = Node> {
    (0..=3u32).prop_flat_map(file_with)
}

/// A whole file with one `members:` list of at least two members, somewhere
/// among its other keys: the shape that is parsed in pieces.
fn file_with_members() -> impl Strategy<Value = Node> {
    (0..=3u32)
        .prop_flat_map(|wild| {
            (file_with(wild), proptest::collection::vec(member(wild), 2..8), any::<prop::sample::Index>())
        })
        .prop_map(|(file, members, at)| {
            let Node::Map(mut pairs, flow) = file else { return file };
            pairs.retain(|(key, _)| key != "members");
            pairs.insert(at.index(pairs.len() + 1), ("members".to_owned(), Node::Seq(members, false)));
            Node::Map(pairs, flow)
        })
}

/// Writes YAML for a generated tree in the chosen style.
struct Writer<'a> {
    style: &'a Style,
    out: String,
    comment: u32,
}

impl Writer<'_> {
    fn flow(&self, node: &Node) -> String {
        let pad = if self.style.flow_spaces { " " } else { "" };
        match node {
            Node::Scalar(t, q, fancy) => scalar(t, *q, *fancy),
            Node::Seq(items, _) => {
                let inner: Vec<String> = items.iter().map(|i| self.flow(i)).collect();
                format!("[{pad}{}{pad}]", inner.join(", "))
            }
            Node::Map(pairs, _) => {
                let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {}", self.flow(v))).collect();
                format!("{{{pad}{}{pad}}}", inner.join(", "))
            }
        }
    }

    fn end_of_line(&mut self) {
        self.comment += 1;
        if self.style.comments && self.comment.is_multiple_of(3) {
            write!(self.out, " # note {}", self.comment).expect("writing to a String");
        }
        self.out.push('\n');
        if self.style.blank_lines && self.comment.is_multiple_of(4) {
            self.out.push('\n');
        }
        if self.style.comments && self.comment.is_multiple_of(5) {
            self.out.push_str("# a comment line\n");
        }
    }

    /// Writes `node` as the value after `key:` (the key already written).
    fn after_key(&mut self, node: &Node, indent: usize) {
        match node {
            Node::Seq(items, false) if !items.is_empty() => {
                self.end_of_line();
                self.block_seq(items, indent + self.style.seq_step);
            }
            Node::Map(pairs, false) if !pairs.is_empty() => {
                self.end_of_line();
                self.block_map(pairs, indent + self.style.map_step);
            }
            _ => {
                let text = self.flow(node);
                if !text.is_empty() {
                    self.out.push_str(&" ".repeat(self.style.space_after_colon));
                    self.out.push_str(&text);
                }
                self.end_of_line();
            }
        }
    }

    fn block_map(&mut self, pairs: &[(String, Node)], indent: usize) {
        for (i, (key, value)) in pairs.iter().enumerate() {
            // The first pair of a sequence item is on the item's line.
            if i > 0 || !self.out.ends_with(' ') {
                self.out.push_str(&" ".repeat(indent));
            }
            write!(self.out, "{key}:").expect("writing to a String");
            self.after_key(value, indent);
        }
    }

    fn block_seq(&mut self, items: &[Node], indent: usize) {
        for item in items {
            self.out.push_str(&" ".repeat(indent));
            self.out.push('-');
            self.out.push_str(&" ".repeat(self.style.item_gap));
            let inner = indent + 1 + self.style.item_gap;
            match item {
                Node::Map(pairs, false) if !pairs.is_empty() => self.block_map(pairs, inner),
                Node::Seq(items, false) if !items.is_empty() => {
                    self.end_of_line();
                    self.block_seq(items, inner);
                }
                _ => {
                    let text = self.flow(item);
                    self.out.push_str(&text);
                    self.end_of_line();
                }
            }
        }
    }
}

fn render(file: &Node, style: &Style, start: bool) -> String {
    let mut writer = Writer { style, out: String::new(), comment: 0 };
    if start {
        writer.out.push_str("# yaml-language-server: $schema=schema/memberctl.schema.json\n---\n");
    }
    if let Node::Map(pairs, _) = file {
        writer.block_map(pairs, 0);
    }
    if style.jitter == 0 {
        return writer.out;
    }
    // Odd indentation: shift every `jitter`-th line in or out by one space.
    let mut out = String::with_capacity(writer.out.len());
    for (i, line) in writer.out.lines().enumerate() {
        let shifted = match (i % style.jitter, (i / style.jitter) % 2) {
            (0, 0) => format!(" {line}"),
            (0, _) => line.strip_prefix(' ').unwrap_or(line).to_owned(),
            _ => line.to_owned(),
        };
        out.push_str(&shifted);
        out.push('\n');
    }
    out
}

/// The fast reader declines or agrees with `serde_yaml`; answers whether it
/// accepted.
fn agrees(text: &str) -> Result<bool, TestCaseError> {
    let Some(fast) = parse_fast(text) else { return Ok(false) };
    match parse_general(text) {
        Ok(general) => {
            prop_assert_eq!(format!("{fast:#?}"), format!("{general:#?}"), "the readers differ on:\n{}", text);
            Ok(true)
        }
        Err(err) => Err(TestCaseError::fail(format!("fast accepted what serde_yaml refuses ({err:?}):\n{text}"))),
    }
}

/// Parsing in pieces (as a large file is, on several threads) declines or
/// reads what parsing the file whole reads; answers whether any cut was made.
fn pieces_agree(text: &str) -> Result<bool, TestCaseError> {
    let mut cut = false;
    for pieces in [2, 3, 7] {
        let Some(in_pieces) = parse_in_pieces(text, pieces) else { continue };
        cut = true;
        let whole = match parse_fast(text) {
            Some(whole) => whole,
            None => parse_general(text).map_err(|err| {
                TestCaseError::fail(format!("pieces accepted what serde_yaml refuses ({err:?}):\n{text}"))
            })?,
        };
        prop_assert_eq!(
            format!("{in_pieces:#?}"),
            format!("{whole:#?}"),
            "{} pieces differ from the whole file on:\n{}",
            pieces,
            text
        );
    }
    Ok(cut)
}

proptest! {
    // `PROPTEST_CASES=100000` runs a deeper search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    // Regression: #9, the fast reader must never give a different answer.
    #[test]
    fn fast_reader_agrees_with_serde_yaml(file in file(), style in style(), start in any::<bool>()) {
        agrees(&render(&file, &style, start))?;
    }

    // Regression: #13, a large file parsed in pieces on several threads
    // must read exactly as the whole file does.
    #[test]
    fn pieces_read_as_the_whole_file(file in file_with_members(), style in style(), start in any::<bool>()) {
        pieces_agree(&render(&file, &style, start))?;
    }
}

/// The generator makes files that are cut into pieces, so the property
/// above compares real results rather than only declines.
#[test]
fn generated_files_are_often_cut_into_pieces() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (file_with_members(), style(), any::<bool>());
    let (mut cut, mut fast) = (0, 0);
    for _ in 0..400 {
        let (file, style, start) = strategy.new_tree(&mut runner).expect("a value").current();
        let text = render(&file, &style, start);
        fast += usize::from(parse_fast(&text).is_some());
        cut += usize::from(pieces_agree(&text).expect("pieces agree"));
    }
    assert!(fast >= 10 && cut * 2 >= fast, "only {cut} of the {fast} files read fast were cut into pieces");
}

// Regression: #13, the benchmark's large files are parsed in pieces, and
// the files the cut must leave whole are left whole.
#[test]
fn large_files_are_cut_into_pieces_and_odd_ones_are_not() {
    for (what, text) in [("plan", plan_config(2_000)), ("apply", apply_config(2_000, "http://127.0.0.1:8080").0)] {
        assert!(pieces_agree(&text).expect("pieces agree"), "the {what} benchmark config is not cut into pieces");
    }
    let members = "  - email: a@example.com\n  - email: b@example.com\n    name: B\n  - email: c@example.com\n";
    for (why, text) in [
        ("members: []", "version: 1\nmembers: []\n".to_owned()),
        ("a second members key", format!("version: 1\nmembers:\n{members}members:\n{members}")),
        ("a second document", format!("members:\n{members}---\nversion: 1\n")),
        ("an item less indented", format!("members:\n{members} - email: d@example.com\n")),
        ("no items", "members:\n  email: a@example.com\nversion: 1\n".to_owned()),
        ("one item", "version: 1\nmembers:\n  - email: a@example.com\n".to_owned()),
        ("a tab", format!("version:\t1\nmembers:\n{members}")),
        // Found by `pieces_read_as_the_whole_file`: YAML refuses this file.
        ("a first key off the margin", format!(" roles: {{}}\nmembers:\n{members}")),
    ] {
        assert!(parse_in_pieces(&text, 2).is_none(), "{why} was cut into pieces:\n{text}");
    }
    for text in [
        format!("version: 1\nmembers:\n{members}providers:\n  p:\n    type: sandbox\n"),
        format!("members:\n# a comment\n{members}\n\n# the end\n"),
        "members:\n- email: a@example.com\n- email: b@example.com\n  roles: [x]\nversion: 1\n".to_owned(),
    ] {
        assert!(pieces_agree(&text).expect("pieces agree"), "not cut into pieces:\n{text}");
    }
}

/// The generator makes files the fast reader accepts, so the property above
/// compares real results rather than only declines.
#[test]
fn generated_files_often_take_the_fast_path() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (file(), style(), any::<bool>());
    let (mut accepted, total) = (0, 200);
    for _ in 0..total {
        let (file, style, start) = strategy.new_tree(&mut runner).expect("a value").current();
        accepted += usize::from(parse_fast(&render(&file, &style, start)).is_some());
    }
    assert!(accepted * 5 >= total, "only {accepted} of {total} generated files took the fast path");
}

/// Asserts `text` takes the fast path and reads as `serde_yaml` reads it.
fn assert_fast(what: &str, text: &str) {
    match agrees(text) {
        Ok(true) => {}
        Ok(false) => panic!(
            "{what} does not take the fast YAML path; a field type the fast reader declines slows every plan down"
        ),
        Err(e) => panic!("{what}: {e}"),
    }
}

// Regression: #9, the examples and the benchmark's configs must stay on the fast path.
#[test]
fn examples_and_benchmark_configs_take_the_fast_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut examples = 0;
    for entry in std::fs::read_dir(&root).expect("examples/") {
        let path = entry.expect("entry").path().join("memberctl.yaml");
        if let Ok(text) = std::fs::read_to_string(&path) {
            assert_fast(&path.display().to_string(), &text);
            examples += 1;
        }
    }
    assert!(examples >= 2, "found only {examples} example configs under {}", root.display());
    assert_fast("the plan benchmark config", &plan_config(500));
    assert_fast("the apply benchmark config", &apply_config(500, "http://127.0.0.1:8080").0);
}
