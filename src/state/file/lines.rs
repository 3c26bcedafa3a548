//! The fast way through a state file as memberctl writes it.
//!
//! Version 2 is written as a header line, one line per record and a
//! closing line (see `write_json`). When a file still has exactly that
//! layout, each line is parsed on its own from a slice, which `serde_json`
//! does several times faster than byte by byte from a reader, on a thread
//! of its own a few batches ahead of the caller (the memory of some
//! thousands of records, never the whole state). Anything else (a
//! pretty-printed or version 1 file, a record
//! hand-edited over several lines, a corrupt line) answers
//! [`Lines::Other`]; the caller then reads the file with the general reader
//! from the start, which accepts exactly the same files and reports every
//! error, so this path never decides whether a file is valid.

use std::io::BufRead;

use serde::Deserialize;
use uuid::Uuid;

use super::seed::{Header, Sink};
use super::stored::Stored;
use super::FORMAT_VERSION;
use crate::state::Resource;

/// What reading by lines found.
pub(super) enum Lines {
    /// Every record was handed on; the file's header.
    Done(Header),
    /// The sink declined a record.
    Declined,
    /// Not a file in the written layout, or not one this path can vouch
    /// for: read it with the general reader (records may already have been
    /// handed on).
    Other,
}

/// The header line without its `"resources":[`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderLine {
    format_version: u32,
    lineage: Uuid,
    serial: u64,
}

const RESOURCES: &[u8] = b",\"resources\":[";
const CLOSING: &[u8] = b"]}";

/// Reads `file` line by line, handing each record to `sink`.
pub(super) fn read(mut file: impl BufRead + Send, sink: Sink<'_>) -> Lines {
    let mut line = Vec::with_capacity(1024);
    let header = match next_line(&mut file, &mut line) {
        Some(text) => match text.strip_suffix(RESOURCES) {
            Some(head) => {
                let mut head = head.to_vec();
                head.push(b'}');
                match serde_json::from_slice::<HeaderLine>(&head) {
                    Ok(h) if h.format_version == FORMAT_VERSION => {
                        Header { format_version: h.format_version, lineage: h.lineage, serial: h.serial }
                    }
                    _ => return Lines::Other,
                }
            }
            None => return Lines::Other,
        },
        None => return Lines::Other,
    };
    // Records are parsed on a thread of their own and handed over in
    // batches, so that parsing the next ones overlaps with what the sink
    // does with these (plan compares each with the config). A few batches
    // ahead at most: the memory stays that of a few thousand records.
    let (batches, received) = std::sync::mpsc::sync_channel::<Vec<Resource>>(BATCHES_AHEAD);
    std::thread::scope(|scope| {
        // Owned here, so that it is dropped before the scope waits for the
        // parser even when the sink panics: the parser's next send then
        // fails and ends it, instead of blocking on a full channel.
        let received = received;
        let parser = scope.spawn(move || records(file, line, header.format_version, &batches));
        let mut declined = false;
        'batches: for batch in &received {
            for resource in batch {
                if !sink(resource) {
                    declined = true;
                    break 'batches;
                }
            }
        }
        // A declined read stops the parser at its next batch.
        drop(received);
        let layout = parser.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if declined {
            Lines::Declined
        } else if layout {
            Lines::Done(header)
        } else {
            Lines::Other
        }
    })
}

/// Records per batch handed from the parser to the sink.
const BATCH: usize = 512;

/// Batches the parser may run ahead of the sink.
const BATCHES_AHEAD: usize = 8;

/// Parses the record lines after the header and sends them on in batches;
/// answers whether the rest of the file had the written layout (`false`
/// also when the sink stopped listening).
fn records(
    mut file: impl BufRead,
    mut line: Vec<u8>,
    format_version: u32,
    batches: &std::sync::mpsc::SyncSender<Vec<Resource>>,
) -> bool {
    // Whether the last record ended with a comma (or none was read yet).
    let mut more = true;
    let mut records = 0usize;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(text) = next_line(&mut file, &mut line) else { return false };
        if text == CLOSING {
            if more && records > 0 {
                return false; // `[{...},]` is not JSON
            }
            break;
        }
        if !more {
            return false;
        }
        records += 1;
        let record = if let Some(record) = text.strip_suffix(b",") {
            record
        } else {
            more = false;
            text
        };
        let Ok(stored) = serde_json::from_slice::<Stored>(record) else { return false };
        let Ok(resource) = stored.into_resource(Some(format_version)) else { return false };
        batch.push(resource);
        if batch.len() == BATCH && batches.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err() {
            return false;
        }
    }
    // The closing line ends the file (a final newline aside); only then
    // are the last records handed on.
    matches!(file.fill_buf(), Ok([])) && (batch.is_empty() || batches.send(batch).is_ok())
}

/// The next line of `file` in `line`, without its newline; `None` at the
/// end of the file, on a read error (the general reader reports it) or on
/// a line that is not one of ours (a carriage return).
fn next_line<'l>(file: &mut impl BufRead, line: &'l mut Vec<u8>) -> Option<&'l [u8]> {
    line.clear();
    match file.read_until(b'\n', line) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            (!text.ends_with(b"\r")).then_some(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::{read, Lines};
    use crate::state::file::tests::state_of;
    use crate::state::file::{parse, to_json};
    use crate::state::{Resource, State};

    /// The state this path reads from `bytes`, or `None` for "not mine".
    fn by_lines(bytes: &[u8]) -> Option<State> {
        let mut records: Vec<Resource> = Vec::new();
        match read(bytes, &mut |r| {
            records.push(r);
            true
        }) {
            Lines::Done(header) => {
                let mut state = State::new();
                state.lineage = header.lineage;
                state.serial = header.serial;
                for r in records {
                    state.resources.insert(r.address.clone(), r);
                }
                Some(state)
            }
            Lines::Declined | Lines::Other => None,
        }
    }

    #[test]
    fn the_written_layout_is_read_by_lines_and_anything_else_is_left_to_the_general_reader() {
        for n in [0, 1, 5] {
            let original = state_of(n);
            assert_eq!(by_lines(&to_json(&original)), Some(original), "{n} records");
        }
        let three = state_of(3);
        let good = String::from_utf8(to_json(&three)).expect("utf-8");
        let value: serde_json::Value = serde_json::from_str(&good).expect("json");
        let pretty = serde_json::to_string_pretty(&value).expect("json");
        let newer = good.replace("{\"format_version\":2,", "{\"format_version\":3,");
        let version_1 = good.replace("{\"format_version\":2,", "{\"format_version\":1,");
        let first_record = good.lines().nth(1).expect("a record").to_owned();
        let split_record = good.replacen("\"status\"", "\n\"status\"", 1);
        for (other, why) in [
            (pretty, "pretty-printed"),
            (newer, "a newer version"),
            (version_1, "version 1"),
            (split_record, "a record over two lines"),
            (good.replace('\n', "\r\n"), "CRLF"),
            (good.replacen("},\n{", "}\n{", 1), "a missing comma"),
            (good.replace("}\n]}", "},\n]}"), "a trailing comma"),
            (format!("{good}x"), "text after the end"),
            (good.replace("\n]}\n", "\n"), "no closing line"),
            (good.replace(&first_record, "{\"address\":1},"), "a bad record"),
            (good.replacen("\"serial\":9", "\"serial\":9,\"serial\":9", 1), "a header key twice"),
        ] {
            assert_eq!(by_lines(other.as_bytes()), None, "{why}: {other}");
        }
        // What the general reader accepts but this path need not: left to it.
        let spaced = good.replacen("\"status\":", "\"status\": ", 1);
        assert_eq!(by_lines(spaced.as_bytes()), Some(three), "spacing inside a line is JSON's business");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        // Whatever a damaged file holds, this path never accepts a file
        // the general reader refuses, nor reads one differently.
        #[test]
        fn by_lines_agrees_with_the_general_reader(
            n in 0usize..6,
            at in any::<prop::sample::Index>(),
            edit in 0u8..3,
            byte in prop::sample::select(b"{}[],:\"\n\\ 0a".to_vec()),
        ) {
            let mut bytes = to_json(&state_of(n));
            let i = at.index(bytes.len());
            match edit {
                0 => { bytes.remove(i); }
                1 => bytes.insert(i, byte),
                _ => bytes[i] = byte,
            }
            if let Some(state) = by_lines(&bytes) {
                let general = parse(Path::new("s"), &bytes);
                prop_assert_eq!(general.ok(), Some(state));
            }
        }
    }
}
