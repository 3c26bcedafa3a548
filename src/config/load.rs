//! Reading config files: paths and directories, size caps, and YAML parsing.
//!
//! `serde_yaml` is used only here (`parse_file`), so replacing it is a change
//! to one function.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::locate::{Locations, Position};
use super::model::ConfigFile;
use super::problem::{Pending, Place, Problem};
use super::{Config, ConfigError};

/// The largest config file accepted. Membership files with 100,000 members
/// are a few tens of MiB at most; anything larger is a mistake or an attack.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

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
pub fn parse_file(text: &str) -> Result<ConfigFile, (String, Option<String>, Option<Position>)> {
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(ConfigFile::default());
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let position = inner.location().map(|l| Position { line: l.line(), column: l.column() });
        let message = inner.to_string();
        // serde_yaml appends " at line X column Y"; the caret shows that.
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        let path = (path != "." && !path.is_empty()).then_some(path);
        (message, path, position)
    })
}

/// Expands config paths: files as given, directories into their sorted
/// `*.yaml`/`*.yml` files.
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
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| ConfigError::Io { path: path.clone(), source })?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                .collect();
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

/// Loads, merges, validates and resolves the config at `paths`.
pub fn load(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    load_with(paths, None)
}

/// Like [`load`], with one more file given as text (`memberctl import`
/// validates the rows it is about to add this way, with the same rules).
pub fn load_with(paths: &[PathBuf], extra: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
    let mut sources = Vec::new();
    for path in expand(paths)? {
        let size = std::fs::metadata(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?.len();
        if size > MAX_FILE_BYTES {
            return Err(ConfigError::Invalid {
                problems: vec![Problem {
                    place: Place { file: path, position: None },
                    snippet: None,
                    message: format!("the file is {size} bytes, more than the {MAX_FILE_BYTES}-byte limit"),
                    hint: Some("split the members over several files in a directory".to_owned()),
                }],
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        sources.push(Source { path, text });
    }
    if let Some((path, text)) = extra {
        sources.push(Source { path: path.to_owned(), text: text.to_owned() });
    }
    from_sources(&sources)
}

/// Loads a config from text, as if read from `path` (for tests and `import`).
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    from_sources(&[Source { path: path.to_owned(), text: text.to_owned() }])
}

fn from_sources(sources: &[Source]) -> Result<Config, ConfigError> {
    let mut pending = Vec::new();
    let mut parsed = Vec::with_capacity(sources.len());
    for (index, source) in sources.iter().enumerate() {
        match parse_file(&source.text) {
            Ok(file) => parsed.push(Some(file)),
            Err((message, path, known)) => {
                pending.push(Pending {
                    file: index,
                    path: path.unwrap_or_default(),
                    at_key: false,
                    message,
                    hint: Some("see `memberctl schema` or the README's config reference".to_owned()),
                    known,
                    also: None,
                });
                parsed.push(None);
            }
        }
    }
    let digest = digest(sources);
    let config = super::resolve::resolve(sources, &parsed, digest, &mut pending);
    if pending.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid { problems: locate(sources, pending) })
    }
}

fn digest(sources: &[Source]) -> String {
    let mut hasher = Sha256::new();
    for source in sources {
        hasher.update(source.path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(source.text.as_bytes());
        hasher.update([0]);
    }
    let bytes = hasher.finalize();
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Turns pending problems into located ones, reading each file's positions once.
fn locate(sources: &[Source], pending: Vec<Pending>) -> Vec<Problem> {
    let mut indexes: Vec<Option<Locations>> = sources.iter().map(|_| None).collect();
    let mut position_of = |file: usize, path: &str, at_key: bool| -> Option<Position> {
        let index = indexes[file].get_or_insert_with(|| Locations::index(&sources[file].text));
        if path.is_empty() {
            return None;
        }
        if at_key {
            index.key(path).or_else(|| index.nearest(path))
        } else {
            index.nearest(path)
        }
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
                .and_then(|pos| sources[p.file].text.lines().nth(pos.line.saturating_sub(1)))
                .filter(|line| line.len() <= MAX_SNIPPET)
                .map(redact_line);
            (
                p.file,
                Problem {
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
    line.to_owned()
}

/// Writes members as a YAML sequence (`- email: ...` items, no `members:` key).
pub fn emit_members(members: &[BTreeMap<String, MemberValue>]) -> String {
    let value: Vec<serde_yaml::Mapping> = members
        .iter()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        MemberValue::Text(t) => serde_yaml::Value::String(t.clone()),
                        MemberValue::List(l) => serde_yaml::Value::Sequence(l.iter().cloned().map(serde_yaml::Value::String).collect()),
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
