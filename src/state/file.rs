//! Reading and writing the state file.
//!
//! Writes are atomic: the new version goes to a temp file in the same
//! directory, is fsynced, the current version is kept as `.backup`, the temp
//! file is renamed over the state, and the directory is fsynced. A state that
//! cannot be read is reported and never overwritten.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::{Resource, State, StateError, StatePaths, FORMAT_VERSION};
use crate::address::Address;

/// The largest state file read (a 100,000-member state is about 60 MiB).
pub const MAX_STATE_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Serialize)]
struct StateFileOut<'a> {
    format_version: u32,
    lineage: Uuid,
    serial: u64,
    resources: Vec<&'a Resource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFileIn {
    format_version: u32,
    lineage: Uuid,
    serial: u64,
    resources: Resources,
}

/// The resources, read straight into the map (no intermediate `Vec`), with
/// the first address that appeared twice, if any.
struct Resources {
    map: BTreeMap<Address, Resource>,
    twice: Option<Address>,
}

/// Builds the resources map as records are read.
///
/// A state file is sorted by address. Inserting sorted records one by one
/// leaves the map's nodes about half empty (and shifts large records around
/// at every split); building from sorted runs fills them. So records are
/// gathered in runs of [`RUN`], each run built bottom-up (`from_iter` checks
/// the order in one pass) and merged into a stack of maps like a binary
/// counter (`append` of sorted, disjoint maps rebuilds them bottom-up too):
/// each record moves a few times, and at most one run is held apart from
/// the maps. Once a record comes out of order (a hand-edited file) or twice,
/// the rest is inserted one by one, as a plain loop would.
struct ResourcesBuilder {
    run: Vec<(Address, Resource)>,
    run_len: usize,
    levels: Vec<BTreeMap<Address, Resource>>,
    /// Out of order: everything is in `levels[0]`, inserted one by one.
    unordered: bool,
    twice: Option<Address>,
}

/// Records per sorted run.
const RUN: usize = 8 * 1024;

impl ResourcesBuilder {
    fn new() -> Self {
        Self::with_run(RUN)
    }

    fn with_run(run_len: usize) -> Self {
        ResourcesBuilder { run: Vec::new(), run_len, levels: Vec::new(), unordered: false, twice: None }
    }

    fn last(&self) -> Option<&Address> {
        self.run.last().map(|(a, _)| a).or_else(|| self.levels.last().and_then(|m| m.last_key_value()).map(|(a, _)| a))
    }

    fn push(&mut self, resource: Resource) {
        let address = resource.address.clone();
        if !self.unordered && self.last().is_some_and(|last| *last >= address) {
            let map = self.merged();
            self.levels = vec![map];
            self.unordered = true;
        }
        if self.unordered {
            if let Some(old) = self.levels[0].insert(address, resource) {
                self.twice.get_or_insert(old.address);
            }
            return;
        }
        self.run.push((address, resource));
        if self.run.len() >= self.run_len {
            self.flush();
        }
    }

    /// Builds the pending run and carries it up the stack.
    fn flush(&mut self) {
        if self.run.is_empty() {
            return;
        }
        let mut map: BTreeMap<Address, Resource> = self.run.drain(..).collect();
        while self.levels.last().is_some_and(|top| top.len() <= map.len()) {
            let mut lower = self.levels.pop().expect("checked");
            lower.append(&mut map);
            map = lower;
        }
        self.levels.push(map);
    }

    /// Everything as one map.
    fn merged(&mut self) -> BTreeMap<Address, Resource> {
        self.flush();
        let mut map = self.levels.pop().unwrap_or_default();
        while let Some(mut lower) = self.levels.pop() {
            lower.append(&mut map);
            map = lower;
        }
        map
    }

    fn finish(mut self) -> Resources {
        Resources { map: self.merged(), twice: self.twice }
    }
}

impl<'de> Deserialize<'de> for Resources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ResourcesVisitor;

        impl<'de> Visitor<'de> for ResourcesVisitor {
            type Value = Resources;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Resources, A::Error> {
                let mut builder = ResourcesBuilder::new();
                while let Some(resource) = seq.next_element::<Resource>()? {
                    builder.push(resource);
                }
                Ok(builder.finish())
            }
        }

        deserializer.deserialize_seq(ResourcesVisitor)
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    format_version: u32,
}

/// Parses state JSON; `path` is for messages.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<State, StateError> {
    let corrupt = |detail: String| StateError::Corrupt { path: path.to_owned(), detail };
    let newer = |found: u32| StateError::NewerFormat { path: path.to_owned(), found };
    // One pass over the file. A newer format is reported as such and not as
    // whatever field it added: when the file does not parse, the version
    // alone is read to tell which it is.
    let file: StateFileIn = match serde_json::from_slice(bytes) {
        Ok(file) => file,
        Err(e) => {
            return Err(match serde_json::from_slice::<VersionOnly>(bytes) {
                Ok(v) if v.format_version > FORMAT_VERSION => newer(v.format_version),
                _ => corrupt(e.to_string()),
            })
        }
    };
    check(path, file)
}

/// The checks of a state file that parsed.
fn check(path: &Path, file: StateFileIn) -> Result<State, StateError> {
    let corrupt = |detail: String| StateError::Corrupt { path: path.to_owned(), detail };
    if file.format_version > FORMAT_VERSION {
        return Err(StateError::NewerFormat { path: path.to_owned(), found: file.format_version });
    }
    if file.format_version == 0 {
        return Err(corrupt("format_version 0 is not a memberctl state".to_owned()));
    }
    if let Some(address) = file.resources.twice {
        return Err(corrupt(format!("address `{address}` appears twice")));
    }
    // A hand-edited address that no longer matches its provider and email
    // would plan a removal and a second invitation of the same person.
    if let Some(r) = file.resources.map.values().find(|r| r.address != Address::new(&r.provider, &r.email)) {
        return Err(corrupt(format!(
            "address `{}` does not match its provider `{}` and email `{}` (addresses are `PROVIDER/lowercased-email`)",
            r.address, r.provider, r.email
        )));
    }
    Ok(State { lineage: file.lineage, serial: file.serial, resources: file.resources.map })
}

/// Reads the state; `Ok(None)` when there is no state file yet.
pub fn read(paths: &StatePaths) -> Result<Option<State>, StateError> {
    let path = &paths.state;
    match fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_STATE_BYTES => {
            return Err(StateError::Corrupt {
                path: path.clone(),
                detail: format!("{} bytes is more than the {MAX_STATE_BYTES}-byte limit", meta.len()),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read", path, e)),
    }
    // Streamed, so that a large state is never in memory twice (as text and
    // as records); anything unexpected, and every error, goes to `parse`,
    // which reads the whole file and says exactly what is wrong.
    let handle = File::open(path).map_err(|e| StateError::io("read", path, e))?;
    if let Some(file) = stream::read(handle) {
        return check(path, file).map(Some);
    }
    let bytes = fs::read(path).map_err(|e| StateError::io("read", path, e))?;
    parse(path, &bytes).map(Some)
}

/// What [`each_record`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    /// There is no state file.
    Missing,
    /// Every record was handed on.
    Done {
        /// The state's lineage.
        lineage: Uuid,
        /// The state's serial.
        serial: u64,
    },
    /// The file could not be streamed (or a record was refused): read it
    /// whole with [`read`], which also reports any error exactly.
    Fallback,
}

/// Hands each record of the state file to `sink`, in file order, without
/// keeping them: `plan` of a large state never holds it all in memory.
pub fn each_record(paths: &StatePaths, sink: &mut dyn FnMut(&Resource) -> bool) -> Result<Streamed, StateError> {
    let path = &paths.state;
    match fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_STATE_BYTES => return Ok(Streamed::Fallback),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Streamed::Missing),
        Err(e) => return Err(StateError::io("read", path, e)),
    }
    let handle = File::open(path).map_err(|e| StateError::io("read", path, e))?;
    // A record whose address does not match it goes to the full reader,
    // which reports it.
    let mut checked =
        |resource: Resource| resource.address == Address::new(&resource.provider, &resource.email) && sink(&resource);
    Ok(match stream::each(handle, &mut checked) {
        Some((lineage, serial)) => Streamed::Done { lineage, serial },
        None => Streamed::Fallback,
    })
}

/// Reading a state file from a stream, a record at a time.
///
/// It accepts what [`parse`] accepts and builds the same state, but holds
/// only a window of the text in memory. It gives up (`None`) at anything
/// unexpected — including every error — and the caller then uses [`parse`].
mod stream {
    use std::io::Read;

    use serde::de::DeserializeOwned;
    use uuid::Uuid;

    use super::{Resource, ResourcesBuilder, StateFileIn};

    const CHUNK: usize = 1 << 20;

    struct Window<R> {
        reader: R,
        chunk: usize,
        buf: Vec<u8>,
        pos: usize,
        eof: bool,
    }

    impl<R: Read> Window<R> {
        /// Reads more; false at the end of the file (or on a read error,
        /// which `parse`'s own read then reports).
        fn fill(&mut self) -> bool {
            if self.eof {
                return false;
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            let old = self.buf.len();
            self.buf.resize(old + self.chunk, 0);
            let n = loop {
                match self.reader.read(&mut self.buf[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break 0,
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                self.eof = true;
            }
            n > 0
        }

        /// The next byte that is not JSON whitespace, not consumed.
        fn peek(&mut self) -> Option<u8> {
            loop {
                while let Some(&b) = self.buf.get(self.pos) {
                    if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                        return Some(b);
                    }
                    self.pos += 1;
                }
                if !self.fill() {
                    return None;
                }
            }
        }

        fn next(&mut self) -> Option<u8> {
            let b = self.peek()?;
            self.pos += 1;
            Some(b)
        }

        /// One JSON value, parsed by `serde_json` from the window.
        fn value<T: DeserializeOwned>(&mut self) -> Option<T> {
            self.peek()?;
            loop {
                let mut values = serde_json::Deserializer::from_slice(&self.buf[self.pos..]).into_iter::<T>();
                match values.next() {
                    // A value that ends the window (a number could go on):
                    // read on and parse it again.
                    Some(Ok(_)) if self.pos + values.byte_offset() == self.buf.len() && !self.eof => {
                        self.fill();
                    }
                    Some(Ok(value)) => {
                        self.pos += values.byte_offset();
                        return Some(value);
                    }
                    Some(Err(e)) if e.is_eof() && !self.eof => {
                        self.fill();
                    }
                    _ => return None,
                }
            }
        }

        /// Hands each record of the `resources` array to `sink`; stops
        /// (`None`) when the sink refuses one or the text is unexpected.
        fn each_resource(&mut self, sink: &mut dyn FnMut(Resource) -> bool) -> Option<()> {
            if self.next()? != b'[' {
                return None;
            }
            if self.peek()? == b']' {
                self.pos += 1;
                return Some(());
            }
            loop {
                if self.peek()? != b'{' {
                    return None;
                }
                if !sink(self.value::<Resource>()?) {
                    return None;
                }
                match self.next()? {
                    b',' => {}
                    b']' => return Some(()),
                    _ => return None,
                }
            }
        }
    }

    /// Reads a state file handing each record to `sink` instead of keeping
    /// it; answers the lineage and serial, or `None` to have the caller
    /// read the file whole (anything unexpected, an error, a newer format,
    /// or a record the sink refused).
    pub(super) fn each<R: Read>(reader: R, sink: &mut dyn FnMut(Resource) -> bool) -> Option<(Uuid, u64)> {
        each_with(reader, CHUNK, sink).map(|(_, lineage, serial)| (lineage, serial))
    }

    /// [`each`], reading `chunk` bytes at a time, also answering the format version.
    fn each_with<R: Read>(reader: R, chunk: usize, sink: &mut dyn FnMut(Resource) -> bool) -> Option<(u32, Uuid, u64)> {
        let mut w = Window { reader, chunk, buf: Vec::new(), pos: 0, eof: false };
        if w.next()? != b'{' {
            return None;
        }
        let (mut format_version, mut lineage, mut serial, mut resources) = (None, None, None, None);
        loop {
            if w.peek()? != b'"' {
                return None;
            }
            let key: String = w.value()?;
            if w.next()? != b':' {
                return None;
            }
            match key.as_str() {
                // The version comes first in every file memberctl writes:
                // records are only handed on once it is known to be readable.
                "format_version" if format_version.is_none() => {
                    let version = w.value::<u32>()?;
                    if version == 0 || version > super::FORMAT_VERSION {
                        return None;
                    }
                    format_version = Some(version);
                }
                "lineage" if lineage.is_none() => lineage = Some(w.value::<Uuid>()?),
                "serial" if serial.is_none() => serial = Some(w.value::<u64>()?),
                "resources" if resources.is_none() && format_version.is_some() => {
                    resources = Some(w.each_resource(sink)?);
                }
                _ => return None,
            }
            match w.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        if w.peek().is_some() {
            return None;
        }
        resources?;
        Some((format_version?, lineage?, serial?))
    }

    /// Reads a whole state file, or `None` to have [`super::parse`] read it.
    pub(super) fn read<R: Read>(reader: R) -> Option<StateFileIn> {
        read_with(reader, CHUNK)
    }

    /// [`read`], reading `chunk` bytes at a time.
    pub(super) fn read_with<R: Read>(reader: R, chunk: usize) -> Option<StateFileIn> {
        let mut builder = ResourcesBuilder::new();
        let (format_version, lineage, serial) = each_with(reader, chunk, &mut |resource| {
            builder.push(resource);
            true
        })?;
        Some(StateFileIn { format_version, lineage, serial, resources: builder.finish() })
    }
}

/// Serialises a state to pretty JSON.
#[must_use]
pub fn to_json(state: &State) -> Vec<u8> {
    let out = StateFileOut {
        format_version: FORMAT_VERSION,
        lineage: state.lineage,
        serial: state.serial,
        resources: state.resources.values().collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&out).expect("state serialises");
    bytes.push(b'\n');
    bytes
}

/// Writes `state` atomically, keeping the previous file as `.backup`.
/// Returns the number of bytes written.
pub fn write(paths: &StatePaths, state: &State) -> Result<u64, StateError> {
    let dir = paths.dir();
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        paths.state.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let bytes = to_json(state);
    {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| StateError::io("create", &tmp, e))?;
        let mut writer = BufWriter::new(file);
        writer.write_all(&bytes).map_err(|e| StateError::io("write", &tmp, e))?;
        let file = writer.into_inner().map_err(|e| StateError::io("write", &tmp, e.into_error()))?;
        file.sync_all().map_err(|e| StateError::io("sync", &tmp, e))?;
    }
    if paths.state.exists() {
        keep_backup(paths)?;
    }
    fs::rename(&tmp, &paths.state).map_err(|e| StateError::io("replace", &paths.state, e))?;
    sync_dir(dir)?;
    Ok(bytes.len() as u64)
}

/// Keeps the current state as `.backup`, replacing the old backup atomically.
fn keep_backup(paths: &StatePaths) -> Result<(), StateError> {
    let backup = paths.backup();
    let staging = paths.dir().join(format!(
        ".{}.tmp-{}",
        backup.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&staging);
    if fs::hard_link(&paths.state, &staging).is_err() {
        fs::copy(&paths.state, &staging).map_err(|e| StateError::io("back up", &paths.state, e))?;
    }
    fs::rename(&staging, &backup).map_err(|e| StateError::io("back up", &backup, e))
}

/// Fsyncs a directory so a rename in it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), StateError> {
    match File::open(dir) {
        Ok(handle) => handle.sync_all().or(Ok(())),
        Err(e) => Err(StateError::io("open", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, stream, to_json, Resource, ResourcesBuilder, State};
    use crate::address::Address;
    use crate::attributes::Attributes;
    use crate::provider::RemoteIds;
    use crate::state::Status;
    use std::path::Path;

    fn resource(i: usize) -> Resource {
        let email = format!("Person.{i:05}@example.com");
        let address = Address::new(if i.is_multiple_of(3) { "workforce" } else { "community" }, &email);
        Resource {
            provider: address.provider().to_owned(),
            address,
            email: email.clone(),
            status: Status::Invited,
            attributes: Attributes {
                email,
                name: Some(format!("Person \"{i}\" Ünïcode")),
                roles: vec!["69baa36beddb9f0012fdf101".to_owned()],
                ..Attributes::default()
            },
            remote: RemoteIds { invite_id: Some(format!("{i:024x}")), user_id: None, timestamp_ms: Some(17) },
            created_at: "2025-01-15T09:30:00Z".to_owned(),
            updated_at: "2025-01-15T09:30:00Z".to_owned(),
            invited_at: None,
            resends: u32::from(i.is_multiple_of(2)),
            message: i.is_multiple_of(5).then(|| "a\nmessage \\ with escapes".to_owned()),
        }
    }

    fn state(n: usize) -> State {
        let mut state = State::new();
        state.serial = 9;
        for i in 0..n {
            let r = resource(i);
            state.resources.insert(r.address.clone(), r);
        }
        state
    }

    #[test]
    fn streamed_reading_matches_parsing_at_any_window_size() {
        for n in [0, 1, 2, 37] {
            let bytes = to_json(&state(n));
            let parsed = parse(Path::new("s"), &bytes).expect("parses");
            for chunk in [1, 2, 3, 7, 64, 1000, 1 << 20] {
                let file = stream::read_with(&bytes[..], chunk).expect("streams");
                let streamed = super::check(Path::new("s"), file).expect("valid");
                assert_eq!(streamed, parsed, "n={n} chunk={chunk}");
            }
        }
    }

    #[test]
    fn streamed_reading_declines_what_it_does_not_expect() {
        let good = String::from_utf8(to_json(&state(3))).expect("utf-8");
        let compact =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&good).expect("json")).expect("json");
        assert!(stream::read_with(compact.as_bytes(), 5).is_some(), "any layout is read");
        for bad in [
            good[..good.len() / 2].to_owned(),
            format!("{good}x"),
            good.replace("\"serial\": 9", "\"serial\": 9, \"serial\": 9"),
            good.replace("\"serial\": 9", "\"serial\": 9, \"extra\": 1"),
            good.replace("\"serial\": 9,", ""),
            good.replace("\"serial\": 9", "\"serial\": 9.5"),
            good.replace("\"resources\": [", "\"resources\": [1,"),
            good.replace("\"status\": \"invited\"", "\"status\": \"unheard-of\""),
            String::new(),
        ] {
            assert!(stream::read_with(bad.as_bytes(), 4).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_builder_keeps_insertion_semantics() {
        let all: Vec<Resource> = (0..50).map(resource).collect();
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| a.address.cmp(&b.address));
        // Sorted, through several runs and levels.
        let mut builder = ResourcesBuilder::with_run(3);
        sorted.iter().cloned().for_each(|r| builder.push(r));
        let built = builder.finish();
        assert!(built.twice.is_none());
        assert_eq!(built.map.values().cloned().collect::<Vec<_>>(), sorted);
        // Out of order, with a duplicate: the first address seen twice is named.
        let mut shuffled = sorted.clone();
        shuffled.swap(10, 40);
        shuffled.insert(45, sorted[20].clone());
        shuffled.insert(46, sorted[5].clone());
        let mut builder = ResourcesBuilder::with_run(4);
        shuffled.iter().cloned().for_each(|r| builder.push(r));
        let built = builder.finish();
        assert_eq!(built.twice.as_ref(), Some(&sorted[20].address));
        assert_eq!(built.map.len(), 50);
    }
}
