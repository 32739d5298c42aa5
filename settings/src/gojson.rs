//! JSON decoding with the semantics of Go's `encoding/json`, which every BOSH document was written for.
//!
//! The Go agent (`settings/settings.go`, `app/config.go`) decodes with `json.Unmarshal`, so the documents
//! that directors, CPIs and stemcells produce rely on three of its rules that serde does not follow:
//!
//! * an object key matches a struct field case-insensitively (`"type"` fills `Type`, `"AGENT_ID"` fills
//!   `agent_id`); an exact match wins when several fields would match;
//! * `null` leaves a field at its zero value instead of failing;
//! * unknown keys are ignored (serde's default, kept: never put `deny_unknown_fields` on BOSH types).
//!
//! Decoding goes through a [`serde_json::Value`] with a deserializer that applies those rules to every
//! struct. Keys of maps (`networks`, `disks.persistent`) are data, not field names, and are kept verbatim.
//! Errors name the place in the document (`env.bosh.swap_size`), so a bad settings document says which
//! field is wrong.
//!
//! Types decoded this way must put `#[serde(default)]` on every struct whose fields may be absent and
//! must not use `#[serde(flatten)]` or untagged enums: serde buffers those and would bypass these rules.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value};

/// Decodes `bytes` as JSON into `T` with Go's rules.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let value: Value = serde_json::from_slice(bytes).map_err(|err| Error {
        path: String::new(),
        message: err.to_string(),
    })?;
    from_value(value)
}

/// Decodes an already parsed JSON value into `T` with Go's rules.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    T::deserialize(GoValue(value)).map_err(|err| Error {
        path: err.path.into_iter().rev().collect(),
        message: err.message,
    })
}

/// A JSON document that does not fit the expected shape, with the place where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Where in the document, such as `env.bosh.swap_size` or `networks.default.dns[0]`; empty for the
    /// document itself (syntax errors carry a line and column in `message`).
    pub path: String,
    /// What is wrong, in serde's words.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field `{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// The deserializer's own error: the path is collected innermost first while the error bubbles up.
#[derive(Debug)]
struct DecodeError {
    path: Vec<String>,
    message: String,
}

impl DecodeError {
    /// Prefixes the path with an object key (`key.rest`).
    fn in_key(mut self, key: &str) -> Self {
        let segment = if self.path.last().is_some_and(|s| !s.starts_with('[')) {
            format!("{key}.")
        } else {
            key.to_owned()
        };
        self.path.push(segment);
        self
    }

    /// Prefixes the path with an array index (`[index]rest`).
    fn in_index(mut self, index: usize) -> Self {
        let segment = if self.path.last().is_some_and(|s| !s.starts_with('[')) {
            format!("[{index}].")
        } else {
            format!("[{index}]")
        };
        self.path.push(segment);
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError {
            path: Vec::new(),
            message: msg.to_string(),
        }
    }
}

/// A JSON value being decoded with Go's rules.
struct GoValue(Value);

impl GoValue {
    fn unexpected(&self) -> de::Unexpected<'_> {
        match &self.0 {
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => de::Unexpected::Unsigned(u),
                (_, Some(i), _) => de::Unexpected::Signed(i),
                (_, _, Some(f)) => de::Unexpected::Float(f),
                _ => de::Unexpected::Other("number"),
            },
            Value::String(s) => de::Unexpected::Str(s),
            Value::Array(_) => de::Unexpected::Seq,
            Value::Object(_) => de::Unexpected::Map,
        }
    }
}

impl<'de> de::Deserializer<'de> for GoValue {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if let Some(f) = n.as_f64() {
                    visitor.visit_f64(f)
                } else {
                    Err(de::Error::custom(format!("number {n} out of range")))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => visitor.visit_seq(GoSeq::new(items)),
            Value::Object(map) => visitor.visit_map(GoMap::verbatim(map)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(GoValue(other)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            // Go decodes `null` into a slice as a nil slice.
            Value::Null => visitor.visit_seq(GoSeq::new(Vec::new())),
            Value::Array(items) => visitor.visit_seq(GoSeq::new(items)),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_map(GoMap::verbatim(Map::new())),
            Value::Object(map) => visitor.visit_map(GoMap::verbatim(map)),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            // Go leaves a struct at its zero value for `null`.
            Value::Null => visitor.visit_map(GoMap::verbatim(Map::new())),
            Value::Object(map) => visitor.visit_map(GoMap::for_struct(map, fields)),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            _ => Err(de::Error::invalid_type(self.unexpected(), &"a string")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

struct GoSeq {
    items: std::vec::IntoIter<Value>,
    index: usize,
}

impl GoSeq {
    fn new(items: Vec<Value>) -> Self {
        GoSeq {
            items: items.into_iter(),
            index: 0,
        }
    }
}

impl<'de> SeqAccess<'de> for GoSeq {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(GoValue(item))
            .map(Some)
            .map_err(|err| err.in_index(index))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct GoMap {
    entries: std::vec::IntoIter<(String, Value)>,
    current_key: String,
    pending: Option<Value>,
}

impl GoMap {
    /// A map whose keys are data: every entry is passed on as it is.
    fn verbatim(map: Map<String, Value>) -> Self {
        GoMap {
            entries: map.into_iter().collect::<Vec<_>>().into_iter(),
            current_key: String::new(),
            pending: None,
        }
    }

    /// An object decoded into a struct: keys are matched to `fields` as Go does, and `null` values are
    /// dropped so the field keeps its default. An object that spells one field twice (`"type"` and
    /// `"Type"`) does not fail, as in Go; the spelling that sorts last wins, because `serde_json` keeps
    /// object keys sorted.
    fn for_struct(map: Map<String, Value>, fields: &'static [&'static str]) -> Self {
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(map.len());
        for (key, value) in map {
            if value.is_null() {
                continue;
            }
            let field = match_field(&key, fields).map_or(key, str::to_owned);
            if let Some(slot) = entries.iter_mut().find(|(k, _)| *k == field) {
                slot.1 = value;
            } else {
                entries.push((field, value));
            }
        }
        GoMap {
            entries: entries.into_iter(),
            current_key: String::new(),
            pending: None,
        }
    }
}

/// Go's field matching: an exact name first, then a case-insensitive one.
fn match_field(key: &str, fields: &'static [&'static str]) -> Option<&'static str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(key)))
        .copied()
}

impl<'de> MapAccess<'de> for GoMap {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(value);
        self.current_key = key.clone();
        seed.deserialize(GoKey(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let value = self
            .pending
            .take()
            .ok_or_else(|| <DecodeError as de::Error>::custom("value requested before key"))?;
        seed.deserialize(GoValue(value))
            .map_err(|err| err.in_key(&self.current_key))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An object key. Keys are strings in JSON; map types with non-string keys are not used in BOSH documents.
struct GoKey(String);

impl<'de> de::Deserializer<'de> for GoKey {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_string(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Inner {
        tmpfs: bool,
        size: Option<u64>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Outer {
        agent_id: String,
        #[serde(rename = "UseDefaultTmpDir")]
        use_default_tmp_dir: bool,
        inner: Inner,
        list: Vec<Inner>,
        names: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn keys_match_fields_case_insensitively() {
        let outer: Outer =
            from_slice(br#"{"AGENT_ID":"a","usedefaulttmpdir":true,"Inner":{"TmpFS":true}}"#)
                .unwrap();
        assert_eq!(outer.agent_id, "a");
        assert!(outer.use_default_tmp_dir);
        assert!(outer.inner.tmpfs);
    }

    #[test]
    fn map_keys_are_kept_verbatim() {
        let outer: Outer = from_slice(br#"{"names":{"Default":"x","default":"y"}}"#).unwrap();
        assert_eq!(outer.names.len(), 2);
        assert_eq!(outer.names["Default"], "x");
    }

    #[test]
    fn null_leaves_fields_at_their_default() {
        let outer: Outer = from_slice(br#"{"agent_id":null,"inner":null,"list":null}"#).unwrap();
        assert_eq!(outer, Outer::default());
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let outer: Outer =
            from_slice(br#"{"agent_id":"a","UseRegistry":true,"cloud_properties":{}}"#).unwrap();
        assert_eq!(outer.agent_id, "a");
    }

    #[test]
    fn a_field_spelled_twice_is_not_an_error() {
        let outer: Outer = from_slice(br#"{"agent_id":"lower","Agent_Id":"mixed"}"#).unwrap();
        assert_eq!(outer.agent_id, "lower");
    }

    #[test]
    fn errors_name_the_nested_field() {
        let err = from_slice::<Outer>(br#"{"inner":{"size":"big"}}"#).unwrap_err();
        assert_eq!(err.path, "inner.size");
        assert!(
            err.message.contains("invalid type: string \"big\""),
            "{}",
            err.message
        );
        assert_eq!(
            err.to_string(),
            format!("field `inner.size`: {}", err.message)
        );
    }

    #[test]
    fn errors_name_array_elements() {
        let err = from_slice::<Outer>(br#"{"list":[{},{"tmpfs":"yes"}]}"#).unwrap_err();
        assert_eq!(err.path, "list[1].tmpfs");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = from_slice::<Outer>(b"{\n\"agent_id\": \"a\",\n").unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.message.contains("line 3"), "{}", err.message);
    }

    #[test]
    fn a_document_of_the_wrong_type_is_refused() {
        let err = from_slice::<Outer>(b"[1,2]").unwrap_err();
        assert!(
            err.message.contains("invalid type: sequence"),
            "{}",
            err.message
        );
    }
}
