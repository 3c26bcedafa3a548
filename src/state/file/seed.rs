//! The state file's reader: a serde visitor that hands each resource on as
//! soon as it is parsed, so that neither the text nor (when the caller
//! does not keep them) the records are ever held whole.
//!
//! The same visitor reads a whole state (into the map) and streams one for
//! `plan`, over a slice or a reader, so both accept exactly the same files
//! and report the same errors.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use uuid::Uuid;

use super::stored::Stored;
use super::FORMAT_VERSION;
use crate::state::Resource;

/// The fields of a state file besides its resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) format_version: u32,
    pub(super) lineage: Uuid,
    pub(super) serial: u64,
}

/// What the reader learned before it stopped, beyond the error serde
/// reports: enough for the caller to say what is really wrong.
#[derive(Debug, Default)]
pub(super) struct Reading {
    /// The format version, once read. A file that then fails to parse is
    /// reported as newer when this says so, not as whatever changed.
    pub(super) version: Option<u32>,
    /// A record that parsed but cannot be right.
    pub(super) problem: Option<String>,
    /// The sink declined a record.
    pub(super) refused: bool,
}

/// Receives each resource as it is parsed; `false` declines it, which stops
/// the reading.
pub(super) type Sink<'s> = &'s mut dyn FnMut(Resource) -> bool;

const FIELDS: &[&str] = &["format_version", "lineage", "serial", "resources"];

/// Reads a state file's top-level object, handing its resources to the sink.
pub(super) struct FileSeed<'r, 's> {
    pub(super) reading: &'r mut Reading,
    pub(super) sink: Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_, '_> {
    type Value = Header;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Header, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_, '_> {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a memberctl state object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let FileSeed { reading, sink } = self;
        let (mut lineage, mut serial, mut resources) = (None, None, false);
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_str() {
                "format_version" => {
                    if reading.version.is_some() {
                        return Err(de::Error::duplicate_field("format_version"));
                    }
                    let version: u32 = map.next_value()?;
                    reading.version = Some(version);
                    // The records of a newer format may mean something else:
                    // none is handed on once it is known to be one.
                    if version > FORMAT_VERSION {
                        return Err(de::Error::custom("newer format"));
                    }
                }
                "lineage" if lineage.is_some() => return Err(de::Error::duplicate_field("lineage")),
                "lineage" => lineage = Some(map.next_value()?),
                "serial" if serial.is_some() => return Err(de::Error::duplicate_field("serial")),
                "serial" => serial = Some(map.next_value()?),
                "resources" if resources => return Err(de::Error::duplicate_field("resources")),
                "resources" => {
                    map.next_value_seed(ResourcesSeed { reading: &mut *reading, sink: &mut *sink })?;
                    resources = true;
                }
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        if !resources {
            return Err(de::Error::missing_field("resources"));
        }
        Ok(Header {
            format_version: reading.version.ok_or_else(|| de::Error::missing_field("format_version"))?,
            lineage: lineage.ok_or_else(|| de::Error::missing_field("lineage"))?,
            serial: serial.ok_or_else(|| de::Error::missing_field("serial"))?,
        })
    }
}

/// A key of the top-level object.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Key)
    }
}

/// Reads the `resources` array, one record at a time.
struct ResourcesSeed<'r, 's> {
    reading: &'r mut Reading,
    sink: Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for ResourcesSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResourcesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of resources")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(stored) = seq.next_element::<Stored>()? {
            let resource = match stored.into_resource(self.reading.version) {
                Ok(resource) => resource,
                Err(problem) => {
                    let error = de::Error::custom(&problem);
                    self.reading.problem = Some(problem);
                    return Err(error);
                }
            };
            if !(self.sink)(resource) {
                self.reading.refused = true;
                return Err(de::Error::custom("a record was declined"));
            }
        }
        Ok(())
    }
}

/// Only the format version of a state file, every other field skipped
/// without being kept: what a file that failed to parse says about its
/// version.
#[derive(Deserialize)]
pub(super) struct VersionOnly {
    pub(super) format_version: u32,
}
