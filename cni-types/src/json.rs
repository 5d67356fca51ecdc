//! JSON output that is byte-compatible with Go's `encoding/json`:
//! `MarshalIndent(v, "", "    ")` for results and errors, compact
//! `Encoder` output for VERSION, and Go's HTML-safe string escaping
//! (`<`, `>`, `&`, U+2028 and U+2029 become `\uXXXX`).

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
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
}
