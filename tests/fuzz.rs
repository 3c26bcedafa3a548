//! Fuzz targets for the two parsers that read files people edit by hand:
//! the config loader and the state parser (issue #9). They run on stable as
//! ordinary tests: proptest supplies random bytes, `arbitrary::Unstructured`
//! turns them into mutations of a valid file, and the case count keeps the
//! whole module to a few seconds. `FUZZ_CASES=100000` searches deeper.
//!
//! Invariants: nothing panics; every config problem names the file and, when
//! it has a position, one inside the file; the state parser accepts only a
//! well-formed state and keeps every record it was given.

use std::path::Path;

use arbitrary::Unstructured;
use memberctl::config::{load_str, rules, ConfigError};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

const QUICKSTART: &str = include_str!("../examples/quickstart/memberctl.yaml");
const NETWORKED_AND_APTLY: &str = include_str!("../examples/networked-and-aptly/memberctl.yaml");

/// A valid state file of format version 1 (still read); [`seed_state`] also
/// gives it as the current format writes it.
const STATE: &str = r#"{
  "format_version": 1,
  "lineage": "12af94a6-33c7-4dfa-aacf-eeb21633d111",
  "serial": 3,
  "resources": [
    {
      "address": "sandbox/jane.doe@example.com",
      "provider": "sandbox",
      "email": "jane.doe@example.com",
      "status": "invited",
      "attributes": {
        "email": "jane.doe@example.com",
        "name": "Jane Doe",
        "roles": ["role-member"],
        "note": "We would love to have you join our community."
      },
      "remote": { "invite_id": "sbx-20261201T211326Z-0" },
      "created_at": "2026-12-01T21:13:26Z",
      "updated_at": "2026-12-01T21:13:26Z",
      "invited_at": "2026-12-01T21:13:26Z"
    },
    {
      "address": "sandbox/maryam.smith@example.com",
      "provider": "sandbox",
      "email": "Maryam.Smith@example.com",
      "status": "invited",
      "attributes": {
        "email": "Maryam.Smith@example.com",
        "first_name": "Maryam",
        "last_name": "Smith",
        "groups": ["group-engineering"],
        "primary_group": "group-engineering"
      },
      "remote": {},
      "created_at": "2026-12-01T21:13:26Z",
      "updated_at": "2026-12-01T21:13:26Z"
    }
  ]
}
"#;

/// Fragments that make YAML and JSON interesting when spliced in anywhere.
const TOKENS: &[&str] = &[
    "\n",
    "\n  ",
    "\n    - ",
    ": ",
    ":",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "'",
    "\\",
    "#",
    " # c",
    "&a ",
    "*a",
    "!!str ",
    "!!map ",
    "<<: ",
    "? ",
    "|\n  ",
    ">-\n  ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "\t",
    "\r\n",
    "\u{feff}",
    "\u{85}",
    "\u{2028}",
    "~",
    "null",
    "true",
    "0x1F",
    "1e5",
    "0123",
    "-1",
    "18446744073709551616",
    ".inf",
    "Zoë",
    "email",
    "members",
    "providers",
    "version",
    "type",
    "sandbox",
    "roles",
    "groups",
    "defaults",
    "note",
    "\0",
    "format_version",
    "resources",
    "address",
    "status",
    "lineage",
    "serial",
    "invited",
    "removed",
    "99",
];

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

fn runner_config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

/// Applies one to four mutations chosen by `u` to `seed`: splicing in a
/// token, overwriting, deleting or repeating a range, or truncating.
fn mutate(seed: &[u8], u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let mut bytes = seed.to_vec();
    for _ in 0..u.int_in_range(1..=4)? {
        let at = u.choose_index(bytes.len() + 1)?;
        match u.int_in_range(0..=5)? {
            0 => {
                let token = u.choose(TOKENS)?;
                bytes.splice(at..at, token.bytes());
            }
            1 => {
                if at < bytes.len() {
                    bytes[at] = u.arbitrary()?;
                }
            }
            2 => {
                let end = (at + u.int_in_range(1..=40)?).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                let end = (at + u.int_in_range(1..=200)?).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = u.choose_index(bytes.len() + 1)?;
                bytes.splice(to..to, copy);
            }
            4 => bytes.truncate(at),
            _ => {
                let raw: Vec<u8> = u.arbitrary()?;
                bytes.splice(at..at, raw.into_iter().take(16));
            }
        }
    }
    Ok(bytes)
}

/// Loads `text` and checks the loader's invariants.
fn check_config(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("conf/fuzz.yaml");
    let problems = match load_str(path, text) {
        Ok(_) => return Ok(()),
        Err(ConfigError::Invalid { problems }) => problems,
        Err(other) => return Err(TestCaseError::fail(format!("unexpected error {other:?} for:\n{text:?}"))),
    };
    prop_assert!(!problems.is_empty(), "`Invalid` with no problems for:\n{:?}", text);
    // Lines as YAML 1.1 counts them: a lone CR, NEL and the Unicode line
    // and paragraph separators end a line too.
    let lines: Vec<String> =
        text.replace("\r\n", "\n").split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']).map(str::to_owned).collect();
    for problem in &problems {
        prop_assert_eq!(&problem.place.file, path);
        match problem.place.position {
            Some(pos) => {
                prop_assert!(
                    pos.line >= 1 && pos.line <= lines.len(),
                    "{:?} is outside the file's {} lines:\n{:?}",
                    problem,
                    lines.len(),
                    text
                );
                let width = lines.get(pos.line - 1).map_or(0, |l| l.chars().count());
                prop_assert!(
                    pos.column >= 1 && pos.column <= width + 1,
                    "{:?} is past the end of its line:\n{:?}",
                    problem,
                    text
                );
            }
            None => prop_assert!(
                problem.rule == rules::NO_VERSION,
                "a problem without a position:\n{:?}\nin:\n{:?}",
                problem,
                text
            ),
        }
        if let Some(snippet) = &problem.snippet {
            prop_assert!(problem.place.position.is_some(), "a snippet without a position: {:?}", problem);
            prop_assert!(!snippet.contains('\n'), "a snippet of more than one line: {:?}", problem);
        }
    }
    Ok(())
}

/// Parses `bytes` as a state and checks that an accepted file is a state
/// of this format whose every record was kept as written.
fn check_state(bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = Path::new("fuzz.state.json");
    let state = match memberctl::state::file::parse(path, bytes) {
        Ok(state) => state,
        Err(err) => {
            prop_assert!(err.to_string().contains("fuzz.state.json"), "the error does not name the file: {}", err);
            return Ok(());
        }
    };
    let shown = String::from_utf8_lossy(bytes);
    let json: serde_json::Value = serde_json::from_str(&shown)
        .map_err(|e| TestCaseError::fail(format!("accepted a state that is not JSON ({e}):\n{shown}")))?;
    let version = json.get("format_version").and_then(serde_json::Value::as_u64);
    prop_assert!(matches!(version, Some(1 | 2)), "accepted a state without `format_version` 1 or 2:\n{}", shown);
    let records = json.get("resources").and_then(serde_json::Value::as_array).map_or(0, Vec::len);
    prop_assert_eq!(state.resources.len(), records, "records were dropped or made up:\n{}", shown);
    for resource in state.resources.values() {
        prop_assert!(
            resource.address.as_str().starts_with(&format!("{}/", resource.provider)),
            "accepted an address that does not match its provider:\n{}",
            shown
        );
    }
    Ok(())
}

/// The stricter half of "never accepts garbage silently", which the state
/// parser does not meet yet: an accepted file is valid UTF-8 JSON, and every
/// key in it is one the format knows (a record whose `remote` key was
/// mangled is accepted today with its remote ids dropped).
fn check_state_strictly(bytes: &[u8]) -> Result<(), TestCaseError> {
    const RECORD_KEYS: &[&str] = &[
        "address",
        "provider",
        "email",
        "status",
        "attributes",
        "remote",
        "created_at",
        "updated_at",
        "invited_at",
        "resends",
        "message",
    ];
    if memberctl::state::file::parse(Path::new("fuzz.state.json"), bytes).is_err() {
        return Ok(());
    }
    let json: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| TestCaseError::fail(format!("accepted a state that is not UTF-8 JSON ({e})")))?;
    for record in json.get("resources").and_then(serde_json::Value::as_array).into_iter().flatten() {
        for key in record.as_object().into_iter().flat_map(serde_json::Map::keys) {
            prop_assert!(RECORD_KEYS.contains(&key.as_str()), "accepted a record with the unknown key {:?}", key);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(runner_config())]

    // Regression: #9, the config loader never panics and places every problem inside the file.
    #[test]
    fn config_loader_on_mutated_examples(raw in proptest::collection::vec(any::<u8>(), 0..256), which in any::<bool>()) {
        let seed = if which { QUICKSTART } else { NETWORKED_AND_APTLY };
        let mut u = Unstructured::new(&raw);
        let bytes = mutate(seed.as_bytes(), &mut u).unwrap_or_else(|_| seed.as_bytes().to_vec());
        check_config(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn config_loader_on_arbitrary_text(text in "\\PC{0,200}") {
        check_config(&text)?;
    }

    // Regression: #9, the state parser never panics and never accepts garbage silently.
    #[test]
    fn state_parser_on_mutated_state(raw in proptest::collection::vec(any::<u8>(), 0..256), current in any::<bool>()) {
        let mut u = Unstructured::new(&raw);
        let seed = seed_state(current);
        let bytes = mutate(&seed, &mut u).unwrap_or(seed);
        check_state(&bytes)?;
    }

    #[test]
    fn state_parser_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_state(&bytes)?;
    }
}

proptest! {
    #![proptest_config(runner_config())]

    // Regression: #9. A record with a mangled key used to be accepted with
    // what the key held (e.g. the provider's ids) silently dropped.
    #[test]
    fn state_parser_refuses_mangled_keys(raw in proptest::collection::vec(any::<u8>(), 0..256), current in any::<bool>()) {
        let mut u = Unstructured::new(&raw);
        let seed = seed_state(current);
        let bytes = mutate(&seed, &mut u).unwrap_or(seed);
        check_state_strictly(&bytes)?;
    }
}

/// The state seed as version 1 ([`STATE`]) or, `current`, as this memberctl
/// writes it (version 2: one record per line, read by lines).
fn seed_state(current: bool) -> Vec<u8> {
    if !current {
        return STATE.as_bytes().to_vec();
    }
    let state = memberctl::state::file::parse(Path::new("seed.state.json"), STATE.as_bytes()).expect("a valid state");
    memberctl::state::file::to_json(&state)
}

/// The seeds are valid, so the mutations start from files that load.
#[test]
fn seeds_are_valid() {
    for seed in [QUICKSTART, NETWORKED_AND_APTLY] {
        load_str(Path::new("seed.yaml"), seed).expect("a valid example");
    }
    let state = memberctl::state::file::parse(Path::new("seed.state.json"), STATE.as_bytes()).expect("a valid state");
    assert_eq!(state.resources.len(), 2);
    let current =
        memberctl::state::file::parse(Path::new("seed.state.json"), &seed_state(true)).expect("a valid state");
    assert_eq!(current, state);
}
