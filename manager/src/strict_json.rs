//! Strict JSON for request bodies: a key given twice in one object, at any
//! depth, is an error that names the key.
//!
//! `serde_json` keeps the last of duplicated keys, so `{"web": 1, "web": 9}`
//! would scale `web` to 9 although the caller may have meant 1. A request
//! that says two things is refused instead, before anything changes.
//!
//! Everything else is `serde_json`'s own parser, with its limits (nesting
//! depth included) and its error positions.

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Parses `text` into a [`Value`], refusing a duplicated key in any object.
///
/// # Errors
/// Invalid JSON, trailing characters, or ``duplicate key `name` `` with its
/// position.
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let Strict(value) = Strict::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Parses `text` strictly (see [`parse`]), then into a `T`.
///
/// # Errors
/// What [`parse`] refuses, or a value that is not a `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(parse(text)?)
}

/// A [`Value`] deserialized with no duplicated key anywhere inside it.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // What `serde_json::Value` does: JSON text has no NaN or infinity.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict::deserialize(deserializer).map(|Strict(v)| v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}`",
                    key.escape_debug()
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `None`: parses, and to what `serde_json` makes of it; `Some(s)`:
    /// refused with `s` in the message.
    fn check(text: &str, refused: Option<&str>) {
        match (parse(text), refused) {
            (Ok(v), None) => {
                let lax: Value = serde_json::from_str(text).unwrap();
                assert_eq!(v, lax, "{text}");
            }
            (Err(e), Some(says)) => {
                let e = e.to_string();
                assert!(e.contains(says), "{text}: expected `{says}` in `{e}`");
            }
            (Ok(v), Some(says)) => panic!("{text}: accepted as {v}, expected `{says}`"),
            (Err(e), None) => panic!("{text}: refused: {e}"),
        }
    }

    #[test]
    fn duplicates_are_refused_at_any_depth() {
        for (text, says) in [
            (r#"{"web": 1, "web": 9}"#, "duplicate key `web`"),
            (r#"{"web": 1, "web": 1}"#, "duplicate key `web`"),
            (r#"{"a": {"b": 1, "c": 2, "b": 3}}"#, "duplicate key `b`"),
            (
                r#"{"a": [{"x": 1}, {"y": 1, "y": 2}]}"#,
                "duplicate key `y`",
            ),
            (r#"[[{"z": null, "z": null}]]"#, "duplicate key `z`"),
            (r#"{"a": {}, "a": {}}"#, "duplicate key `a`"),
            // The same key after unescaping is the same key.
            (r#"{"web": 1, "w\u0065b": 2}"#, "duplicate key `web`"),
            (r#"{"": 1, "": 2}"#, "duplicate key ``"),
            // Shown escaped: a key cannot break the message's line.
            (r#"{"a\nb": 1, "a\nb": 2}"#, "duplicate key `a\\nb`"),
        ] {
            check(text, Some(says));
        }
    }

    #[test]
    fn no_false_positives() {
        for text in [
            "{}",
            "[]",
            "null",
            "true",
            "-1.5e3",
            "18446744073709551615",
            "-9223372036854775808",
            r#""web""#,
            r#"{"web": 1, "worker": 9}"#,
            // The same key in different objects, siblings or nested.
            r#"[{"web": 1}, {"web": 2}]"#,
            r#"{"a": {"a": {"a": 1}}, "b": {"a": 2}}"#,
            r#"{"web": {"count": 1}, "worker": {"count": 1}}"#,
            // Keys that differ only in case or by escape are different.
            r#"{"web": 1, "Web": 2, "web ": 3, "w\\eb": 4}"#,
            r#"{"a": [1, 2, 2, {"b": [null, false]}], "c": "a"}"#,
        ] {
            check(text, None);
        }
    }

    #[test]
    fn other_errors_stay_serde_json_errors() {
        check(r#"{"web": 1,}"#, Some("trailing comma"));
        check(r#"{"web": 1} x"#, Some("trailing characters"));
        check("", Some("EOF"));
        check(&"[".repeat(200), Some("recursion limit"));
        check(r#"{"web": 1, "web": 9}"#, Some("line 1 column"));
    }

    #[test]
    fn typed_parse_is_strict_too() {
        let ok: BTreeMap<String, u16> = from_str(r#"{"web": 4, "clock": 1}"#).unwrap();
        assert_eq!(ok.get("web"), Some(&4));
        let e = from_str::<BTreeMap<String, u16>>(r#"{"web": 1, "web": 9}"#).unwrap_err();
        assert!(e.to_string().starts_with("duplicate key `web`"), "{e}");
        let e = from_str::<BTreeMap<String, u16>>(r#"{"web": -1}"#).unwrap_err();
        assert!(e.to_string().contains("expected u16"), "{e}");
    }
}
