//! Pretty JSON exactly as `serde_json::to_writer_pretty` writes it, faster
//! for plans: a string with nothing to escape (nearly every string in a
//! plan: addresses, emails, ids, names) is checked 16 bytes at a time and
//! copied in one go, where `serde_json` looks at each byte in turn (that
//! loop was two fifths of turning a 1M first plan into text). Numbers and
//! strings that need escapes are still written by `serde_json`; this module
//! only lays out the brackets, commas and indentation, as its pretty
//! formatter does. The tests compare the two on arbitrary values.

use serde::ser::{self, Error as _, Impossible, Serialize};

type Error = serde_json::Error;

/// The name `serde_json` gives its raw values, which only it can write.
const RAW_VALUE: &str = "$serde_json::private::RawValue";

/// Appends `value` to `out` as `serde_json::to_writer_pretty` would. Errs
/// (having written part of it) where `serde_json` would, and for map keys
/// other than strings, chars and integers, which callers then leave to
/// `serde_json`.
pub(crate) fn to_vec_pretty<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Pretty { out, depth: 0 })
}

struct Pretty<'o> {
    out: &'o mut Vec<u8>,
    depth: usize,
}

impl<'o> Pretty<'o> {
    fn newline(&mut self) {
        self.out.push(b'\n');
        for _ in 0..self.depth {
            self.out.extend_from_slice(b"  ");
        }
    }

    fn scalar<T: Serialize>(&mut self, value: T) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, &value)
    }

    fn string(&mut self, text: &str) -> Result<(), Error> {
        if plain(text.as_bytes()) {
            self.out.reserve(text.len() + 2);
            self.out.push(b'"');
            self.out.extend_from_slice(text.as_bytes());
            self.out.push(b'"');
            Ok(())
        } else {
            serde_json::to_writer(&mut *self.out, text)
        }
    }

    /// Opens an array or an object; `wrapped` when it is the value of a
    /// variant's one-key object, which it then also closes.
    fn open<'a>(&'a mut self, open: u8, close: u8, wrapped: bool) -> Compound<'a, 'o> {
        self.out.push(open);
        self.depth += 1;
        Compound { ser: self, close, first: true, wrapped }
    }

    /// `{"variant": ` with the object left open, as the value comes next.
    fn variant_key(&mut self, variant: &str) -> Result<(), Error> {
        self.out.push(b'{');
        self.depth += 1;
        self.newline();
        self.string(variant)?;
        self.out.extend_from_slice(b": ");
        Ok(())
    }

    fn close_variant(&mut self) {
        self.depth -= 1;
        self.newline();
        self.out.push(b'}');
    }
}

/// Nothing in `bytes` that JSON escapes: control characters, `"` and `\`.
fn plain(bytes: &[u8]) -> bool {
    // No early exit inside a chunk, so each chunk is checked in one go.
    bytes
        .chunks(16)
        .all(|chunk| chunk.iter().fold(0u8, |found, &b| found | u8::from(b < 0x20 || b == b'"' || b == b'\\')) == 0)
}

/// `fn $method(self, v: $type)` for each, answering `self.$to(v)`.
macro_rules! forward_to {
    ($to:ident: $($method:ident($type:ty)),* $(,)?) => {$(
        fn $method(self, v: $type) -> Result<(), Error> {
            self.$to(v)
        }
    )*};
}

/// `fn $method(self, _: $type)` for each, refusing the key.
macro_rules! refused {
    ($($method:ident($type:ty)),* $(,)?) => {$(
        fn $method(self, _: $type) -> Result<(), Error> {
            Err(other_key())
        }
    )*};
}

/// The compounds whose elements come one after the other (`[...]`).
macro_rules! element_wise {
    ($($compound:ident::$method:ident),* $(,)?) => {$(
        impl ser::$compound for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

/// The compounds of named fields (`{"field": ...}`).
macro_rules! field_wise {
    ($($compound:ident),* $(,)?) => {$(
        impl ser::$compound for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

impl<'a, 'o> ser::Serializer for &'a mut Pretty<'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, 'o>;
    type SerializeTuple = Compound<'a, 'o>;
    type SerializeTupleStruct = Compound<'a, 'o>;
    type SerializeTupleVariant = Compound<'a, 'o>;
    type SerializeMap = Compound<'a, 'o>;
    type SerializeStruct = Compound<'a, 'o>;
    type SerializeStructVariant = Compound<'a, 'o>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    forward_to!(scalar: serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
        serialize_i128(i128), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
        serialize_u128(u128), serialize_f32(f32), serialize_f64(f64));
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        let mut array = self.open(b'[', b']', false);
        for byte in v {
            ser::SerializeSeq::serialize_element(&mut array, byte)?;
        }
        ser::SerializeSeq::end(array)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<(), Error> {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant_key(variant)?;
        value.serialize(&mut *self)?;
        self.close_variant();
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'o>, Error> {
        Ok(self.open(b'[', b']', false))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a, 'o>, Error> {
        Ok(self.open(b'[', b']', false))
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a, 'o>, Error> {
        Ok(self.open(b'[', b']', false))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Error> {
        self.variant_key(variant)?;
        Ok(self.open(b'[', b']', true))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'o>, Error> {
        Ok(self.open(b'{', b'}', false))
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Compound<'a, 'o>, Error> {
        if name == RAW_VALUE {
            return Err(Error::custom("a raw value, which serde_json writes itself"));
        }
        Ok(self.open(b'{', b'}', false))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Error> {
        self.variant_key(variant)?;
        Ok(self.open(b'{', b'}', true))
    }
}

/// An open array or object.
struct Compound<'a, 'o> {
    ser: &'a mut Pretty<'o>,
    close: u8,
    first: bool,
    wrapped: bool,
}

impl Compound<'_, '_> {
    /// The comma, newline and indentation before an element or a key.
    fn next(&mut self) {
        if !self.first {
            self.ser.out.push(b',');
        }
        self.first = false;
        self.ser.newline();
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.next();
        value.serialize(&mut *self.ser)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        self.next();
        self.ser.string(key)?;
        self.ser.out.extend_from_slice(b": ");
        value.serialize(&mut *self.ser)
    }

    #[allow(clippy::unnecessary_wraps)] // the `end` of every compound answers this
    fn close(self) -> Result<(), Error> {
        self.ser.depth -= 1;
        if !self.first {
            self.ser.newline();
        }
        self.ser.out.push(self.close);
        if self.wrapped {
            self.ser.close_variant();
        }
        Ok(())
    }
}

element_wise!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.next();
        key.serialize(Key(&mut *self.ser))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.ser.out.extend_from_slice(b": ");
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

field_wise!(SerializeStruct, SerializeStructVariant);

/// A map key: strings as they are, integers quoted (as `serde_json` writes
/// them); any other key is left to `serde_json`.
struct Key<'a, 'o>(&'a mut Pretty<'o>);

impl Key<'_, '_> {
    fn quoted<T: Serialize>(self, number: T) -> Result<(), Error> {
        self.0.out.push(b'"');
        self.0.scalar(number)?;
        self.0.out.push(b'"');
        Ok(())
    }
}

fn other_key() -> Error {
    Error::custom("a map key other than a string or an integer, which serde_json writes itself")
}

impl ser::Serializer for Key<'_, '_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.0.string(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.0.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<(), Error> {
        self.0.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    forward_to!(quoted: serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
        serialize_i128(i128), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64),
        serialize_u128(u128));
    refused!(serialize_bool(bool), serialize_f32(f32), serialize_f64(f64), serialize_bytes(&[u8]));
    fn serialize_none(self) -> Result<(), Error> {
        Err(other_key())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Error> {
        Err(other_key())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(other_key())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(other_key())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(other_key())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Impossible<(), Error>, Error> {
        Err(other_key())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Impossible<(), Error>, Error> {
        Err(other_key())
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Impossible<(), Error>, Error> {
        Err(other_key())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Impossible<(), Error>, Error> {
        Err(other_key())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Impossible<(), Error>, Error> {
        Err(other_key())
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Impossible<(), Error>, Error> {
        Err(other_key())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Impossible<(), Error>, Error> {
        Err(other_key())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::Value;

    use super::to_vec_pretty;

    fn ours<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        to_vec_pretty(&mut out, value).expect("serialises");
        out
    }

    fn theirs<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        serde_json::to_vec_pretty(value).expect("serialises")
    }

    fn same<T: Serialize + ?Sized>(value: &T) {
        let (ours, theirs) = (ours(value), theirs(value));
        assert!(
            ours == theirs,
            "ours:\n{}\nserde_json's:\n{}",
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(u8);

    #[derive(Serialize)]
    struct Pair(i32, &'static str);

    #[derive(Serialize)]
    enum Shape {
        Point,
        Circle(f64),
        Segment(i8, i8),
        Empty(),
        Box { width: u32, label: Option<String> },
        Nothing {},
    }

    #[derive(Serialize)]
    #[allow(clippy::struct_field_names)] // one of each kind
    struct Everything {
        unit: (),
        unit_struct: Unit,
        newtype: Newtype,
        pair: Pair,
        shapes: Vec<Shape>,
        none: Option<u8>,
        some: Option<Vec<u8>>,
        empty_list: Vec<String>,
        empty_map: BTreeMap<String, u8>,
        by_number: BTreeMap<u64, &'static str>,
        by_char: BTreeMap<char, bool>,
        wide: (i128, u128),
        floats: (f32, f64, f64),
        character: char,
        #[serde(with = "serde_bytes_like")]
        bytes: Vec<u8>,
        text: &'static str,
    }

    /// Bytes through `serialize_bytes`, as `serde_bytes` would.
    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(bytes)
        }
    }

    #[test]
    fn every_kind_of_value_is_written_as_serde_json_writes_it() {
        same(&Everything {
            unit: (),
            unit_struct: Unit,
            newtype: Newtype(7),
            pair: Pair(-3, "three"),
            shapes: vec![
                Shape::Point,
                Shape::Circle(1.5),
                Shape::Segment(-1, 1),
                Shape::Empty(),
                Shape::Box { width: 3, label: None },
                Shape::Box { width: 4, label: Some("a \"box\"\n".to_owned()) },
                Shape::Nothing {},
            ],
            none: None,
            some: Some(vec![1, 2]),
            empty_list: Vec::new(),
            empty_map: BTreeMap::new(),
            by_number: BTreeMap::from([(1, "one"), (u64::MAX, "max")]),
            by_char: BTreeMap::from([('x', true), ('"', false)]),
            wide: (i128::MIN, u128::MAX),
            floats: (0.1, f64::NAN, -2.5e-300),
            character: '\u{7}',
            bytes: vec![0, 255],
            text: "tab\there, quote \" backslash \\ and \u{1f} \u{7f} é 😀",
        });
        same(&Shape::Point);
        same(&Shape::Segment(1, 2));
        same(&Vec::<u8>::new());
    }

    #[test]
    fn keys_serde_json_cannot_write_are_refused_and_so_are_ours() {
        let by_pair = BTreeMap::from([((1, 2), 3)]);
        assert!(serde_json::to_vec_pretty(&by_pair).is_err());
        assert!(to_vec_pretty(&mut Vec::new(), &by_pair).is_err());
        // A bool key: left to serde_json, whatever it makes of it.
        assert!(to_vec_pretty(&mut Vec::new(), &BTreeMap::from([(true, 1)])).is_err());
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[ -~\\t\\n\\u{0}-\\u{1f}\"\\\\é😀]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"\\\\\\n é]{0,8}", inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_value_is_written_as_serde_json_writes_it(value in any_value()) {
            prop_assert_eq!(String::from_utf8(ours(&value)).expect("UTF-8"), String::from_utf8(theirs(&value)).expect("UTF-8"));
        }

        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(text in any::<String>(), tricky in "[\\u{0}-\\u{7f}]{0,70}") {
            prop_assert_eq!(ours(&text), theirs(&text));
            prop_assert_eq!(ours(&tricky), theirs(&tricky));
        }
    }
}
