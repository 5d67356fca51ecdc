//! JSON output that is byte-compatible with Go's `encoding/json`:
//! `MarshalIndent(v, "", "    ")` for results and errors, compact
//! `Encoder` output for VERSION, and Go's HTML-safe string escaping
//! (`<`, `>`, `&`, U+2028 and U+2029 become `\uXXXX`).
//!
//! JSON input read like Go's `encoding/json` in one respect that matters for
//! configs: [`from_slice`] and [`from_value`] fill a struct only from a JSON
//! object. serde's derived structs also accept an array (fields taken by
//! position), so `"ipam": []` would silently become an empty IPAM section
//! where Go refuses "cannot unmarshal array into Go struct field".

use serde::Serialize;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    Visitor,
};
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use std::fmt;
use std::io;

/// Serializes `value` as Go's `json.MarshalIndent(value, "", "    ")` does:
/// 4-space indentation and no trailing newline.
///
/// # Errors
/// Only if `value`'s `Serialize` implementation fails.
pub fn to_go_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    let formatter = GoEscape(PrettyFormatter::with_indent(b"    "));
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// Serializes `value` as Go's `json.Encoder.Encode` does: compact, with a
/// trailing newline.
///
/// # Errors
/// Only if `value`'s `Serialize` implementation fails.
pub fn to_go_line<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, GoEscape(CompactFormatter));
    value.serialize(&mut serializer)?;
    out.push(b'\n');
    Ok(out)
}

/// Wraps a formatter and escapes strings the way Go does.
struct GoEscape<F>(F);

impl<F: Formatter> Formatter for GoEscape<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (index, ch) in fragment.char_indices() {
            let escaped = match ch {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..index])?;
            writer.write_all(escaped.as_bytes())?;
            start = index + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        // Go writes \b and \f as \u0008 and \u000c; everything else matches.
        match char_escape {
            CharEscape::Backspace => writer.write_all(b"\\u0008"),
            CharEscape::FormFeed => writer.write_all(b"\\u000c"),
            other => self.0.write_char_escape(writer, other),
        }
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// Reads `T` from JSON bytes like `serde_json::from_slice`, except that a
/// struct is only read from a JSON object, never from an array.
///
/// # Errors
/// As `serde_json::from_slice`; an array where a struct belongs is
/// `invalid type: sequence, expected struct …`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(ObjectStructs(&mut de))?;
    de.end()?;
    Ok(value)
}

/// Reads `T` from a JSON value like `serde_json::from_value`, except that a
/// struct is only read from a JSON object, never from an array.
///
/// # Errors
/// As [`from_slice`].
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> serde_json::Result<T> {
    T::deserialize(ObjectStructs(value))
}

/// A deserializer that asks for a map wherever a struct is wanted, at every
/// depth (maps, sequences, options and newtypes are wrapped on the way down).
struct ObjectStructs<D>(D);

/// The visitor side of [`ObjectStructs`].
struct Strict<V>(V);

/// A seed whose value is read through [`ObjectStructs`].
struct Seed<S>(S);

macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(Strict(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectStructs<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Strict(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Strict(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Strict(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Strict(visitor))
    }

    /// The point of the wrapper: a struct is read as a map only.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Strict(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Strict(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Strict<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
        visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
        visit_u128: u128 visit_f32: f32 visit_f64: f64 visit_char: char visit_str: &str
        visit_borrowed_str: &'de str visit_string: String visit_bytes: &[u8]
        visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(ObjectStructs(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(ObjectStructs(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Strict(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Strict(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(data)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(ObjectStructs(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_uses_four_spaces_and_no_newline() {
        let out = to_go_pretty(&json!({"a": [1, {"b": "c"}]})).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n    \"a\": [\n        1,\n        {\n            \"b\": \"c\"\n        }\n    ]\n}"
        );
    }

    #[test]
    fn empty_object_is_braces() {
        let out = to_go_pretty(&json!({"dns": {}})).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\n    \"dns\": {}\n}");
    }

    #[test]
    fn html_characters_are_escaped_like_go() {
        let out = to_go_pretty(&json!("<nil> & \u{2028}x\u{8}\u{c}\n\"")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\u003cnil\\u003e \\u0026 \\u2028x\\u0008\\u000c\\n\\\"\""
        );
    }

    #[test]
    fn line_is_compact_with_newline() {
        let out = to_go_line(&json!({"a": ["b", "<"]})).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":[\"b\",\"\\u003c\"]}\n"
        );
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        a: String,
        #[serde(default)]
        b: Option<u32>,
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    struct Outer {
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        any: Option<serde_json::Value>,
    }

    #[test]
    fn structs_are_read_from_objects_only_at_every_depth() {
        // serde alone takes an array as the fields in order.
        let lenient: Outer = serde_json::from_str(r#"{"inner": ["x", 1]}"#).unwrap();
        assert_eq!(lenient.inner.unwrap().a, "x");
        for text in [
            r#"[]"#,
            r#"{"inner": []}"#,
            r#"{"inner": ["x", 1]}"#,
            r#"{"list": [{}, []]}"#,
        ] {
            let err = from_slice::<Outer>(text.as_bytes()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("invalid type: sequence, expected struct"),
                "{text}: {err}"
            );
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert!(from_value::<Outer>(value).is_err(), "{text}");
        }
        let good = r#"{"inner": {"a": "x", "b": 1}, "list": [{}], "any": [1, {"k": []}]}"#;
        let strict: Outer = from_slice(good.as_bytes()).unwrap();
        assert_eq!(strict, serde_json::from_str(good).unwrap());
        assert_eq!(
            from_value::<Outer>(serde_json::from_str(good).unwrap()).unwrap(),
            strict
        );
        assert!(from_slice::<Outer>(b"{} x").is_err(), "trailing characters");
        assert!(
            from_slice::<Outer>(br#"{"inner": null}"#)
                .unwrap()
                .inner
                .is_none()
        );
    }
}
