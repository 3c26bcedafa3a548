//! Reading config files: paths and directories, size caps, and YAML parsing.
//!
//! `serde_yaml` is used only here (`parse_file`), so replacing it is a change
//! to one function.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::locate::{Lines, Locations, Position};
use super::model::{ConfigFile, MemberConfig};
use super::problem::{rules, Pending, Place, Problem, Rule};
use super::{Config, ConfigError};

/// The largest config file accepted. Membership files with 100,000 members
/// are a few tens of MiB at most; anything larger is a mistake or an attack.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// How many problems of one file that the event parser could not place are
/// placed by reading the file again (each a full pass over it).
const MAX_SEEKS: usize = 20;

/// Longer source lines are not quoted under an error.
const MAX_SNIPPET: usize = 240;

/// One config file as read.
pub(crate) struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// Parses one file's text into the file model, or a problem with a position.
///
/// Alias bombs and deep nesting are refused by `serde_yaml`'s own limits
/// (repetition and recursion), which surface here as ordinary errors.
pub fn parse_file(text: &str) -> Parsed {
    if blank(text) {
        return Ok(ConfigFile::default());
    }
    match super::fast_yaml::parse(text) {
        Some(file) => Ok(file),
        None => parse_general(text),
    }
}

/// What the fast reader makes of `text`: `None` when it declines, and the
/// file then goes to [`parse_general`].
///
/// Public so tests can check which files take the fast path (a new field
/// type must not silently send every file to the slow one) and that the two
/// readers agree.
#[must_use]
pub fn parse_fast(text: &str) -> Option<ConfigFile> {
    super::fast_yaml::parse(text)
}

/// The fast reader's parse of a file's head (the file without its members),
/// which may be empty.
fn parse_head(head: &str) -> Option<ConfigFile> {
    if blank(head) {
        Some(ConfigFile::default())
    } else {
        super::fast_yaml::parse(head)
    }
}

/// Whether a file holds nothing but blank lines and comments.
fn blank(text: &str) -> bool {
    text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

/// What parsing `text` cut into about `pieces` pieces gives (as a large file
/// is parsed, on several threads), its members joined; `None` when the file
/// is not cut that way or a piece is declined, and it is then parsed whole.
///
/// Public so tests can hold it to parsing the file whole.
#[must_use]
pub fn parse_in_pieces(text: &str, pieces: usize) -> Option<ConfigFile> {
    let split = super::fast_yaml::split(text, pieces)?;
    let mut file = parse_head(&split.head)?;
    for (piece, items) in split.pieces.into_iter().zip(split.items) {
        file.members.extend(super::fast_yaml::parse_members(piece, items)?);
    }
    Some(file)
}

/// What the general parser (`serde_yaml`, and the one that reports errors)
/// makes of `text`; an error comes with its message, the path inside the
/// file and a position inside it.
pub fn parse_general(text: &str) -> Result<ConfigFile, (String, Option<String>, Option<Position>)> {
    if let Some((message, at)) = super::hostile::refusal(text) {
        return Err((message, None, Some(at)));
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let position = inner
            .location()
            .map(|l| Position { line: l.line(), column: l.column() })
            .or_else(|| super::locate::trouble(text))
            .map(|p| super::locate::within(text, p));
        let message = inner.to_string();
        // serde_yaml appends " at line X column Y"; the caret shows that.
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        let (mut path, mut position) = (path, position);
        // A field given twice is placed at the field (the path index keeps
        // the last of two equal keys: the duplicate), not at its mapping.
        let duplicate = message.split_once("duplicate field `").and_then(|(_, rest)| rest.split('`').next());
        if let Some(field) = duplicate {
            path = if path == "." || path.is_empty() { field.to_owned() } else { format!("{path}.{field}") };
            position = super::locate::Locations::index(text).key(&path).or(position);
        }
        let path = (path != "." && !path.is_empty()).then_some(path);
        (message, path, position)
    })
}

/// Most problems [`salvage`] reports in one file (each a pass over the
/// whole file, as [`MAX_SEEKS`]).
const MAX_SALVAGED: usize = 20;

/// After [`parse_general`] fails on a value of the wrong type or shape, the
/// rest of the file: the file read again as plain YAML with each offending
/// key (or list item) left out, one at a time, so that validation still
/// reports every other problem in it (DESIGN: *every* problem). Answers the
/// file without them and each further problem's message and path; `None`
/// when the text is not YAML at all (the first error is then the only one
/// there is to say).
pub(crate) fn salvage(text: &str, first: Option<&str>) -> Option<Salvaged> {
    // Each pass reads the whole file again: a file this large says its
    // first such problem only, and quickly.
    const MAX_BYTES: usize = 4 << 20;
    // Read again as YAML, a hostile file would cost what it was refused for.
    if text.len() > MAX_BYTES || super::hostile::refusal(text).is_some() {
        return None;
    }
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let mut found = Vec::new();
    let mut left_out = Vec::new();
    for _ in 0..=MAX_SALVAGED {
        let error = match serde_path_to_error::deserialize::<_, ConfigFile>(value.clone()) {
            Ok(file) => return Some(Salvaged { file, found, left_out }),
            Err(error) => error,
        };
        let path = error.path().to_string();
        if path == "." || path.is_empty() || !leave_out(&mut value, &path) {
            return None;
        }
        left_out.push(path.clone());
        // Leaving out `providers.x.type` makes `providers.x` lack a `type`:
        // a consequence of a problem already said, not one of its own.
        let consequence =
            first.into_iter().chain(found.iter().map(|(_, p): &(String, String)| p.as_str())).any(|said| {
                said == path || said.strip_prefix(path.as_str()).is_some_and(|rest| rest.starts_with(['.', '[']))
            });
        if !consequence && found.len() < MAX_SALVAGED {
            found.push((error.into_inner().to_string(), path));
        }
    }
    None
}

/// What [`salvage`] made of a file.
pub(crate) struct Salvaged {
    /// The file without what was left out.
    pub file: ConfigFile,
    /// The further problems: message and path.
    pub found: Vec<(String, String)>,
    /// Every path left out (also those of problems not said again).
    pub left_out: Vec<String>,
}

/// Removes the node at `path` (`members[1].providers`) from `value`;
/// whether it was there.
fn leave_out(value: &mut serde_yaml::Value, path: &str) -> bool {
    use super::locate::Step;
    let Some(steps) = super::locate::steps(path) else { return false };
    let Some((last, parents)) = steps.split_last() else { return false };
    let mut node = value;
    for step in parents {
        let next = match step {
            Step::Key(key) => node.get_mut(*key),
            Step::Index(index) => node.get_mut(*index),
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    let is_members = parents == [Step::Key("members")];
    match (last, node) {
        (Step::Key(key), serde_yaml::Value::Mapping(map)) => map.remove(*key).is_some(),
        // A member becomes an empty one (unless it is one already), so those
        // after it keep their places (`members[4]` must still name the fifth).
        (Step::Index(index), serde_yaml::Value::Sequence(items))
            if is_members && items.get(*index).is_some_and(|item| item.as_mapping().is_none_or(|m| !m.is_empty())) =>
        {
            items[*index] = serde_yaml::Value::Mapping(serde_yaml::Mapping::new());
            true
        }
        (Step::Index(index), serde_yaml::Value::Sequence(items)) if !is_members && *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

/// Drops validation's problems that only follow from what salvage left
/// out of a file (`salvaged`: file index and path): those at or inside a
/// left-out path, a member said to lack the `email` or `providers` left
/// out, and an unknown provider or catalog name that salvage took out.
fn without_consequences(pending: &mut Vec<Pending>, salvaged: &[(usize, String)]) {
    // At or inside a left-out path; or the member whose `email` or
    // `providers` was left out, said to lack it.
    let related = |problem: &Pending, left: &str| {
        let (at, path) = (problem.path.as_str(), left);
        let inside = at == path || at.strip_prefix(path).is_some_and(|rest| rest.starts_with(['.', '[']));
        let lacking = match path.rsplit_once('.') {
            Some((parent, "email")) => at == parent && problem.rule == rules::MEMBER_NO_EMAIL,
            Some((parent, "providers")) => at == parent && problem.rule == rules::MEMBER_NO_PROVIDER,
            _ => false,
        };
        inside || lacking
    };
    let removed_names: Vec<(Rule, String)> = salvaged
        .iter()
        .filter_map(|(_, path)| {
            let (section, name) = path.split_once('.')?;
            let rule = match section {
                "providers" => rules::UNKNOWN_PROVIDER,
                "roles" => rules::UNKNOWN_ROLE,
                "plans" => rules::UNKNOWN_PLAN,
                "groups" => rules::UNKNOWN_GROUP,
                "positions" => rules::UNKNOWN_POSITION,
                _ => return None,
            };
            (!name.contains(['.', '['])).then(|| (rule, format!("`{name}`")))
        })
        .collect();
    pending.retain(|problem| {
        if problem.rule == rules::PARSE {
            return true;
        }
        let at_salvaged = salvaged.iter().any(|(file, path)| *file == problem.file && related(problem, path));
        let names_removed =
            removed_names.iter().any(|(rule, name)| problem.rule == *rule && problem.message.contains(name));
        !at_salvaged && !names_removed
    });
}

/// Expands config paths: files as given, directories into the
/// `*.yaml`/`*.yml` files anywhere below them, sorted by path.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound { path: path.clone() }
            } else {
                ConfigError::Io { path: path.clone(), source }
            }
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            if found.is_empty() {
                return Err(ConfigError::EmptyDirectory { path: path.clone() });
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Collects the YAML files below `dir`. Hidden entries are skipped, so that
/// `-c .` does not read `.github/` workflows or `.git/`; so are symbolic
/// links, so that a team cannot pull files from outside the folder it owns
/// (nor make a cycle).
fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Io { path: dir.to_owned(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Io { path: dir.to_owned(), source })?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        if kind.is_dir() {
            walk(&path, found)?;
        } else if kind.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            found.push(path);
        }
    }
    Ok(())
}

/// Loads, merges, validates and resolves the config at `paths`.
pub fn load(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    load_with(paths, None)
}

/// Like [`load`], with one more file given as text (`memberctl import`
/// validates the rows it is about to add this way, with the same rules).
pub fn load_with(paths: &[PathBuf], extra: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
    let mut sources = Vec::new();
    for path in expand(paths)? {
        let too_large = |path: PathBuf, message: String| ConfigError::Invalid {
            problems: vec![Problem {
                rule: rules::FILE_TOO_LARGE,
                place: Place { file: path, position: None },
                snippet: None,
                message,
                hint: Some("split the members over several files in a directory".to_owned()),
            }],
        };
        let io = |source| ConfigError::Io { path: path.clone(), source };
        let size = std::fs::metadata(&path).map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(too_large(
                path,
                format!("the file is {size} bytes, more than the {MAX_FILE_BYTES}-byte limit"),
            ));
        }
        // Read with the limit too: a pipe or a device (`-c <(...)`,
        // `/dev/zero`) has no size to look at first.
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(io)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large(path, format!("the file is longer than the {MAX_FILE_BYTES}-byte limit")));
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => return Err(not_utf8(path, error.as_bytes(), error.utf8_error().valid_up_to())),
        };
        sources.push(Source { path, text });
    }
    if let Some((path, text)) = extra {
        sources.push(Source { path: path.to_owned(), text: text.to_owned() });
    }
    from_sources(&sources)
}

/// A file that is not UTF-8, placed at its first byte that is not.
fn not_utf8(path: PathBuf, bytes: &[u8], valid: usize) -> ConfigError {
    let before = &bytes[..valid];
    let line = before.split(|&b| b == b'\n').count();
    let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    ConfigError::Invalid {
        problems: vec![Problem {
            rule: rules::PARSE,
            place: Place { file: path, position: Some(Position { line, column }) },
            snippet: None,
            message: format!("the file is not UTF-8: byte 0x{:02x} cannot start a character here", bytes[valid]),
            hint: Some("save the file as UTF-8 (YAML files are text in UTF-8)".to_owned()),
        }],
    }
}

/// Loads a config from text, as if read from `path` (for tests and `import`).
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    from_sources(&[Source { path: path.to_owned(), text: text.to_owned() }])
}

fn from_sources(sources: &[Source]) -> Result<Config, ConfigError> {
    // Files whose pieces the fast reader declined part way: read whole.
    let mut whole = vec![false; sources.len()];
    loop {
        let mut pending = Vec::new();
        let mut salvaged: Vec<(usize, String)> = Vec::new();
        let mut parsed = Vec::with_capacity(sources.len());
        let mut runs = Vec::with_capacity(sources.len());
        let (attempts, digest) = parse_all(sources, &whole);
        for (index, attempt) in attempts.into_iter().enumerate() {
            match attempt.parsed {
                Ok(mut file) => {
                    let mut file_runs = attempt.runs;
                    if file_runs.is_empty() {
                        file_runs.push(Run::Parsed(std::mem::take(&mut file.members)));
                    }
                    runs.push(file_runs);
                    parsed.push(Some(file));
                }
                Err((message, path, known)) => {
                    let hint = || Some("see `memberctl schema` or the README's config reference".to_owned());
                    let rescued = salvage(&sources[index].text, path.as_deref());
                    pending.push(Pending {
                        rule: rules::PARSE,
                        file: index,
                        path: path.unwrap_or_default(),
                        at_key: false,
                        message,
                        hint: hint(),
                        known,
                        also: None,
                    });
                    // The rest of the file is validated too; its problems
                    // are placed by their paths.
                    if let Some(Salvaged { mut file, found: more, left_out }) = rescued {
                        salvaged.extend(left_out.into_iter().map(|path| (index, path)));
                        for (message, path) in more {
                            let message = message.split(" at line ").next().unwrap_or(&message);
                            // As serde_yaml words the first one: path first.
                            let message = format!("{path}: {message}");
                            pending.push(Pending {
                                rule: rules::PARSE,
                                file: index,
                                path,
                                at_key: false,
                                message,
                                hint: hint(),
                                known: None,
                                also: None,
                            });
                        }
                        runs.push(vec![Run::Parsed(std::mem::take(&mut file.members))]);
                        parsed.push(Some(file));
                    } else {
                        runs.push(Vec::new());
                        parsed.push(None);
                    }
                }
            }
        }
        match super::resolve::resolve(sources, &parsed, runs, digest, &mut pending) {
            Err(declined) => {
                for file in declined {
                    whole[file] = true;
                }
            }
            Ok(config) if pending.is_empty() => return Ok(config),
            Ok(_) => {
                without_consequences(&mut pending, &salvaged);
                return Err(ConfigError::Invalid { problems: locate(sources, pending) });
            }
        }
    }
}

/// What [`parse_file`] answers.
pub type Parsed = Result<ConfigFile, (String, Option<String>, Option<Position>)>;

/// A file at least this large is parsed in pieces (its head, and runs of
/// its members), so that one large file uses every core too, and its
/// members can be resolved and freed run by run.
const SPLIT_BYTES: usize = 1 << 20;

/// One file's parse: the file, and its members in runs. A file parsed whole
/// has its members in the file and no runs; a file cut into pieces has none
/// in the file and its members in runs of text, in order, each parsed where
/// it is resolved (so that a large file's parsed members are never all in
/// memory at once).
pub(crate) struct ParsedFile<'a> {
    pub parsed: Parsed,
    pub runs: Vec<Run<'a>>,
}

/// A run of a file's members.
pub(crate) enum Run<'a> {
    Parsed(Vec<MemberConfig>),
    /// `items` items of the `members:` sequence, to be parsed with
    /// [`super::fast_yaml::parse_members`].
    Text {
        text: &'a str,
        items: usize,
    },
}

/// A piece of parsing work.
enum Unit {
    Whole(usize),
    Head(usize, String),
}

/// Parses every source, on as many threads as there are cores (a config
/// split over many files, as large organisations keep it, and one large
/// file cut into pieces alike), and digests them meanwhile. Answers the
/// parses in source order.
fn parse_all<'a>(sources: &'a [Source], whole: &[bool]) -> (Vec<ParsedFile<'a>>, String) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    // Finding where to cut reads every byte of a large file: the files are
    // cut on every core too (a config of many large files, as at 1M, took
    // half a second on one), and digested meanwhile.
    let cut = |index: usize| {
        let text = &sources[index].text;
        let count = (text.len() / SPLIT_BYTES).max(cores * 4);
        (text.len() >= SPLIT_BYTES && !whole[index]).then(|| super::fast_yaml::split(text, count)).flatten()
    };
    let (splits, digest) = crate::parallel::map_in_order((0..sources.len()).collect(), cut, || digest(sources));
    let mut units = Vec::new();
    let mut pieces: Vec<Vec<Run<'a>>> = sources.iter().map(|_| Vec::new()).collect();
    for (index, split) in splits.into_iter().enumerate() {
        match split {
            Some(split) => {
                units.push(Unit::Head(index, split.head));
                pieces[index] =
                    split.pieces.into_iter().zip(split.items).map(|(text, items)| Run::Text { text, items }).collect();
            }
            None => units.push(Unit::Whole(index)),
        }
    }
    // A head the fast reader declines is read whole, which also finds its
    // error; the file's pieces are then not used.
    let work = |unit: Unit| match unit {
        Unit::Whole(index) => (parse_file(&sources[index].text), false),
        Unit::Head(index, head) => match parse_head(&head) {
            Some(file) => (Ok(file), true),
            None => (parse_file(&sources[index].text), false),
        },
    };
    let (done, ()) = crate::parallel::map_in_order(units, work, || ());
    let mut files = Vec::with_capacity(sources.len());
    for ((parsed, cut), mut runs) in done.into_iter().zip(pieces) {
        if !cut {
            runs.clear();
        }
        files.push(ParsedFile { parsed, runs });
    }
    (files, digest)
}

fn digest(sources: &[Source]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hasher = Sha256::new();
    for source in sources {
        hasher.update(source.path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(source.text.as_bytes());
        hasher.update([0]);
    }
    let bytes = hasher.finalize();
    bytes.iter().flat_map(|b| [char::from(HEX[usize::from(b >> 4)]), char::from(HEX[usize::from(b & 0xf)])]).collect()
}

/// Turns pending problems into located ones, reading each file's positions once.
fn locate(sources: &[Source], pending: Vec<Pending>) -> Vec<Problem> {
    let mut indexes: Vec<Option<Locations>> = sources.iter().map(|_| None).collect();
    let texts: Vec<Lines<'_>> = sources.iter().map(|s| Lines::new(&s.text)).collect();
    let mut seeks = vec![0usize; sources.len()];
    let mut position_of = |file: usize, path: &str, at_key: bool| -> Option<Position> {
        let index = indexes[file].get_or_insert_with(|| Locations::index(&sources[file].text));
        // An empty path is the whole file, unless a key is empty (`? `).
        if path.is_empty() && !at_key {
            return None;
        }
        let exact = if at_key { index.key(path) } else { index.value(path) };
        // A file the event parser gave up on part way is searched again with
        // serde_yaml's own reading: one pass per problem, so only a few.
        let mut reread = || {
            if index.complete || seeks[file] >= MAX_SEEKS {
                return None;
            }
            seeks[file] += 1;
            super::locate::seek(&sources[file].text, path, at_key)
        };
        let found = exact.or_else(&mut reread).or_else(|| index.nearest(path));
        found.map(|pos| texts[file].within(pos))
    };
    let mut problems: Vec<(usize, Problem)> = pending
        .into_iter()
        .map(|p| {
            let position = p.known.or_else(|| position_of(p.file, &p.path, p.at_key));
            let mut message = p.message;
            if let Some((file, path)) = &p.also {
                let first = Place { file: sources[*file].path.clone(), position: position_of(*file, path, true) };
                message = format!("{message} (first defined at {first})");
            }
            let snippet = position
                .and_then(|pos| texts[p.file].get(pos.line))
                .filter(|line| line.len() <= MAX_SNIPPET)
                .map(redact_line);
            (
                p.file,
                Problem {
                    rule: p.rule,
                    place: Place { file: sources[p.file].path.clone(), position },
                    snippet,
                    message,
                    hint: p.hint,
                },
            )
        })
        .collect();
    problems.sort_by(|(fa, a), (fb, b)| {
        let key = |p: &Problem| p.place.position.map_or((0, 0), |pos| (pos.line, pos.column));
        fa.cmp(fb).then(key(a).cmp(&key(b)))
    });
    problems.dedup_by(|(_, a), (_, b)| a == b);
    problems.into_iter().map(|(_, p)| p).collect()
}

/// Hides the value on a line whose key looks like a secret, so an error's
/// snippet never echoes a password someone put in YAML by mistake.
fn redact_line(line: &str) -> String {
    const SECRET_KEYS: [&str; 5] = ["password", "passwd", "secret", "token", "api_key"];
    if let Some((key, value)) = line.split_once(':') {
        let bare = key.trim().trim_start_matches("- ").trim_matches(['"', '\'']).to_lowercase();
        let is_reference = bare.ends_with("_env") || bare.ends_with("_file");
        if !is_reference && !value.trim().is_empty() && SECRET_KEYS.iter().any(|k| bare.contains(k)) {
            return format!("{key}: [redacted]");
        }
    }
    crate::url_policy::hide_userinfo(line)
}

/// Writes members as a YAML sequence (`- email: ...` items, no `members:` key).
#[must_use]
pub fn emit_members(members: &[BTreeMap<String, MemberValue>]) -> String {
    let value: Vec<serde_yaml::Mapping> = members
        .iter()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        MemberValue::Text(t) => serde_yaml::Value::String(t.clone()),
                        MemberValue::List(l) => {
                            serde_yaml::Value::Sequence(l.iter().cloned().map(serde_yaml::Value::String).collect())
                        }
                    };
                    (serde_yaml::Value::String(k.clone()), v)
                })
                .collect()
        })
        .collect();
    if value.is_empty() {
        return String::new();
    }
    serde_yaml::to_string(&value).unwrap_or_default()
}

/// A member field's value, for [`emit_members`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberValue {
    /// A scalar.
    Text(String),
    /// A list of names.
    List(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::{digest, parse_all, parse_file, parse_general, Source};
    use crate::config::fast_yaml as fast;

    #[test]
    fn members_share_their_catalog_ids() {
        use std::fmt::Write as _;

        // Large enough to be cut into pieces resolved on several threads.
        let mut text = "version: 1\nproviders:\n  sandbox:\n    type: sandbox\n    outbox: o.jsonl\nroles:\n  member: { sandbox: role-member }\n  admin: { sandbox: role-admin }\nmembers:\n".to_owned();
        for i in 0..40_000 {
            let role = if i % 2 == 0 { "member" } else { "admin" };
            writeln!(text, "  - email: m{i}@example.com\n    providers: [sandbox]\n    roles: [{role}]")
                .expect("writing to a String cannot fail");
        }
        assert!(text.len() > super::SPLIT_BYTES);
        let config = super::load_str(std::path::Path::new("members.yaml"), &text).expect("valid");
        let mut shared: Vec<crate::attributes::Id> = Vec::new();
        for (_, attributes) in &config.desired {
            let [role] = attributes.roles.as_slice() else { panic!("one role each") };
            match shared.iter().find(|id| **id == *role) {
                Some(first) => assert!(std::sync::Arc::ptr_eq(first, role), "`{role}` copied, not shared"),
                None => shared.push(role.clone()),
            }
        }
        assert_eq!(shared.len(), 2);
    }

    #[test]
    fn files_parsed_on_threads_come_back_in_order_with_their_errors() {
        let sources: Vec<Source> = (0..9)
            .map(|i| Source {
                path: format!("f{i}.yaml").into(),
                text: if i % 4 == 1 {
                    format!("members:\n  - email: [broken {i}\n")
                } else {
                    format!("members:\n  - email: m{i}@example.com\n")
                },
            })
            .collect();
        let (attempts, together) = parse_all(&sources, &vec![false; sources.len()]);
        assert_eq!(together, digest(&sources));
        assert_eq!(attempts.len(), sources.len());
        for (attempt, source) in attempts.iter().zip(&sources) {
            assert!(attempt.runs.is_empty(), "small files are parsed whole");
            match (&attempt.parsed, parse_file(&source.text)) {
                (Ok(file), Ok(alone)) => assert_eq!(file.members[0].email, alone.members[0].email),
                (Err(error), Err(alone)) => assert_eq!(error, &alone),
                _ => panic!("{} parsed differently on a thread", source.path.display()),
            }
        }
    }

    /// The fast reader either declines or reads exactly what `serde_yaml` reads.
    fn same(text: &str) -> bool {
        let Some(quick) = fast::parse(text) else { return false };
        let slow =
            parse_general(text).unwrap_or_else(|e| panic!("fast accepted what serde_yaml refuses: {e:?}\n{text}"));
        assert_eq!(format!("{quick:?}"), format!("{slow:?}"), "{text}");
        true
    }

    #[test]
    fn examples_are_read_fast_and_the_same() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for dir in ["quickstart", "networked-and-aptly"] {
            let text = std::fs::read_to_string(root.join(dir).join("memberctl.yaml")).expect("example");
            assert!(same(&text), "{dir} should be read by the fast reader");
        }
    }

    #[test]
    fn typical_files_are_read_fast_and_the_same() {
        let text = r#"# yaml-language-server: $schema=schema/memberctl.schema.json
---
version: 1
providers:
  community:
    type: networked
    base_url: http://127.0.0.1:8080   # a fake
    rate_limit: 0.5
    batch_size: 100
    capabilities: [invite]
  workforce:
    type: aptly
    tenant_id: 42db2b59-b9c6-4705-a0d9-916e597cd4aa
    timeout: 30s
roles:
  member:    { community: 69baa36beddb9f0012fdf101, workforce: bbc5418c-8d81-4756-b3e6-84e1e87f06c3 }
  moderator: { community: 69baa36beddb9f0012fdf102 }
plans: {}
groups:
  engineering: { workforce: e9100cc7-048a-4d01-a64f-9e0030938f6a }
defaults:
  providers: [community]
  roles: [member]
  note: "Welcome: glad you're here #1"
safety:
  max_changes: 250
invites:
  resend_after: 14d
members:
- email: jane.doe@example.com
  name: Jane "JJ" Doe
  plans: []
  note: We would love to have you join our community. # trailing comment
- email: "maryam.smith@example.com"
  first_name: Maryam
  last_name: 'Smith'
  phone: "+1 (555) 123-4567"
  providers:
  - workforce
  groups:
    - engineering
  primary_group: engineering
  existing_user: {id: abc, active: true, count: 3}
  unknown_key: { nested: 1 }
  other_unknown:
    deeper: [a, 2, 3.5, ~]
-   email: kim@example.com
    name: Kim   
    method: direct
    password_env: KIM_PASSWORD
    name_typo: x
  # a comment between members
- email: ZOË@example.com
  name: Zoë Ågren
  phone: 5551234
  note: C#/.NET developer
"#;
        assert!(same(text));
    }

    #[test]
    fn anything_else_is_declined_or_read_the_same() {
        let cases = [
            "version: 1\nmembers:\n  - email: a@example.com\n    name: 123\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    name: true\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    name: ~\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    name:\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    name: null\n",
            "version: 1\nmembers:\n  - email:\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    note: a #b\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    note: a#b\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    note: first line\n      second line\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    note: |\n      block\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    note: \"esc\\\"aped\"\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    note: 'it''s'\n",
            "version: 1\nmembers:\n  - &a\n    email: a@example.com\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    roles: [a, [b]]\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    roles: [a,\n      b]\n",
            "version: 1\nmembers:\n  - email: a@example.com\n    roles: member\n",
            "version: 1\nmembers:\n  - - a\n",
            "version: 1\nmembers:\n- email: a@example.com\n  roles:\n  - r\n  name: A B\n- email: b@example.com\n",
            "version: 1.0\n",
            "version: 01\n",
            "version: 0x1\n",
            "safety:\n  max_changes: 1e3\n",
            "providers:\n  p:\n    type: networked\n    rate_limit: .5\n",
            "providers:\n  p:\n    type: networked\n    rate_limit: 1e2\n",
            "providers:\n  p:\n    type: networked\n    timeout: .inf\n",
            "providers:\n  p:\n    type: networked\n    timeout: 0o17\n",
            "providers:\n  p:\n    type: networked\n    timeout: -3\n",
            "providers:\n  p:\n    type: networked\n    base_url: nan\n",
            "providers:\n  p:\n    type: networked\n    base_url: inf\n",
            "providers:\n  p:\n    type: networked\n    base_url: True\n",
            "providers:\n  p:\n    type: networked\n    base_url:\n",
            "version: 1\nversion: 1\n",
            "members: []\nmembers: []\n",
            "roles:\n  a: { p: 1, p: 2 }\n",
            "foo:\n  bar: [1, 2]\n  bar: 3\n",
            "foo: {1: a}\n",
            "foo:\n  1: a\n  true: b\n",
            "version: 1\n---\nversion: 1\n",
            "%YAML 1.2\n---\nversion: 1\n",
            "version: 1\n...\n",
            "version:\t1\n",
            "version: 1\r\n",
            "\u{feff}version: 1\n",
            "  version: 1\n  members: []\n",
            "version: 1\n  members: []\n",
            "members:\n- email: a@example.com\n   name: x\n",
            "members:\n  - email: a@example.com\n  - \n  - email: b@example.com\n",
            "? version\n: 1\n",
            "version: !!str 1\n",
            "members: [{email: a@example.com}]\n",
            "defaults:\n  providers: []\n  note: 'x' # c\n",
            "defaults:\n  note: 'x'y\n",
            "defaults:\n  note: \"x\" y\n",
            "defaults:\n  note: x: y\n",
            "defaults:\n  note: x:\n",
            "defaults:\n  note: -x\n",
            "defaults:\n  note: [a b, c]\n",
            "defaults:\n  providers: [a, ]\n",
            "defaults:\n  providers: [ ]\n",
            "invites: {}\nsafety: {max_changes: 5}\n",
            "members:\n  - email: a@example.com\n    unknown_key: { nested: [1, 2] }\n",
        ];
        for text in cases {
            let _ = same(text);
        }
        // The subset is not empty: plain files go fast.
        assert!(same(
            "version: 1\nmembers:\n- email: a@example.com\n  roles:\n  - r\n  name: A B\n- email: b@example.com\n"
        ));
    }
}
