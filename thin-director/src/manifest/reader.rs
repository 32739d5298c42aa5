//! Reading YAML values by hand, so that unknown keys, wrong types and missing keys are all found in
//! one go, each with its path.
//!
//! Serde stops at the first error of a document, and an operator editing a manifest wants all of
//! them. So manifests and cloud configs are parsed into a `serde_yaml_ng::Value` first and then read
//! through a [`Reader`], which records a [`Problem`] for everything it cannot use and carries on with
//! the rest. A read function returns `None` only after recording why.

use std::net::IpAddr;

use serde_yaml_ng::{Mapping, Value};

use crate::manifest::error::{Document, Problem};
use crate::manifest::ip::IpRange;

/// Collects the problems of one document.
#[derive(Debug)]
pub(crate) struct Reader {
    document: Document,
    problems: Vec<Problem>,
}

/// The keys a map may have.
#[derive(Debug)]
pub(crate) struct Keys {
    /// Keys we read.
    pub known: &'static [&'static str],
    /// Keys operators commonly carry that we accept and ignore.
    pub ignored: &'static [&'static str],
    /// BOSH keys the thin director refuses, with a clearer message than an unknown key gets.
    pub unsupported: &'static [&'static str],
}

/// Where a value sits in its document: `instance_groups[1].jobs[0].release`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Path(String);

/// The entries of a map whose keys were checked.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    path: Path,
    map: &'a Mapping,
}

impl Path {
    /// The path of the value under `key`.
    pub fn key(&self, key: &str) -> Path {
        if self.0.is_empty() {
            Path(key.to_owned())
        } else {
            Path(format!("{}.{key}", self.0))
        }
    }

    /// The path of the list element at `index`.
    pub fn index(&self, index: usize) -> Path {
        Path(format!("{}[{index}]", self.0))
    }
}

impl Reader {
    /// A reader for `document` with no problems yet.
    pub fn new(document: Document) -> Reader {
        Reader {
            document,
            problems: Vec::new(),
        }
    }

    /// Parses YAML text into a value, with merge keys (`<<: *anchor`) applied.
    pub fn parse(&mut self, text: &str) -> Option<Value> {
        let parsed = serde_yaml_ng::from_str::<Value>(text).and_then(|mut value| {
            value.apply_merge()?;
            Ok(value)
        });
        match parsed {
            Ok(value) => Some(value),
            Err(err) => {
                self.problem(&Path::default(), format!("not valid YAML: {err}"));
                None
            }
        }
    }

    /// Records a problem at `path`.
    pub fn problem(&mut self, path: &Path, message: impl Into<String>) {
        self.problems.push(Problem {
            document: self.document,
            path: path.0.clone(),
            message: message.into(),
        });
    }

    /// How many problems were recorded so far.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// Whether any problem was recorded.
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The value when nothing went wrong, else every problem.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Vec<Problem>> {
        match value {
            Some(value) if self.problems.is_empty() => Ok(value),
            _ => Err(self.problems),
        }
    }

    /// Checks that `value` is a map whose keys are all strings in `keys`, recording a problem for
    /// each other key.
    pub fn fields<'a>(&mut self, value: &'a Value, path: &Path, keys: &Keys) -> Option<Fields<'a>> {
        let Value::Mapping(map) = value else {
            self.wrong_type(path, "a map", value);
            return None;
        };
        for key in map.keys() {
            let Some(key) = key.as_str() else {
                self.problem(path, format!("keys must be strings, found {}", kind(key)));
                continue;
            };
            if keys.known.contains(&key) || keys.ignored.contains(&key) {
                continue;
            }
            if keys.unsupported.contains(&key) {
                self.problem(&path.key(key), "not supported by the thin director");
            } else {
                self.problem(&path.key(key), "unknown key");
            }
        }
        Some(Fields {
            path: path.clone(),
            map,
        })
    }

    /// Reads every element of a list with `read`, giving each its path.
    pub fn each<'a, T>(
        &mut self,
        value: &'a Value,
        path: &Path,
        mut read: impl FnMut(&mut Reader, &'a Value, Path) -> Option<T>,
    ) -> Vec<T> {
        let Value::Sequence(items) = value else {
            self.wrong_type(path, "a list", value);
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| read(self, item, path.index(index)))
            .collect()
    }

    /// A string.
    pub fn string(&mut self, value: &Value, path: &Path) -> Option<String> {
        match value {
            Value::String(text) => Some(text.clone()),
            other => {
                self.wrong_type(path, "a string", other);
                None
            }
        }
    }

    /// A string or a number, as text: versions are often written `3` or `1.5` unquoted.
    pub fn scalar(&mut self, value: &Value, path: &Path) -> Option<String> {
        match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            other => {
                self.wrong_type(path, "a string", other);
                None
            }
        }
    }

    /// An integer.
    pub fn integer(&mut self, value: &Value, path: &Path) -> Option<i64> {
        match value.as_i64() {
            Some(number) => Some(number),
            None => {
                self.wrong_type(path, "an integer", value);
                None
            }
        }
    }

    /// An integer that is zero or more.
    pub fn count(&mut self, value: &Value, path: &Path) -> Option<u64> {
        let number = self.integer(value, path)?;
        match u64::try_from(number) {
            Ok(count) => Some(count),
            Err(_) => {
                self.problem(path, format!("must not be negative, found {number}"));
                None
            }
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, value: &Value, path: &Path) -> Option<bool> {
        match value {
            Value::Bool(flag) => Some(*flag),
            other => {
                self.wrong_type(path, "a boolean", other);
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings(&mut self, value: &Value, path: &Path) -> Option<Vec<String>> {
        let Value::Sequence(items) = value else {
            self.wrong_type(path, "a list", value);
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        let mut all_good = true;
        for (index, item) in items.iter().enumerate() {
            match self.string(item, &path.index(index)) {
                Some(text) => strings.push(text),
                None => all_good = false,
            }
        }
        all_good.then_some(strings)
    }

    /// A map of anything (properties, cloud properties), as JSON.
    pub fn object(
        &mut self,
        value: &Value,
        path: &Path,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        if !value.is_mapping() {
            self.wrong_type(path, "a map", value);
            return None;
        }
        match self.json(value, path)? {
            serde_json::Value::Object(map) => Some(map),
            _ => None, // A mapping always converts to an object.
        }
    }

    /// Any value, as JSON. Map keys that are numbers or booleans become strings, as they do when
    /// the Ruby director hands properties to templates as JSON.
    pub fn json(&mut self, value: &Value, path: &Path) -> Option<serde_json::Value> {
        match value {
            Value::Null => Some(serde_json::Value::Null),
            Value::Bool(flag) => Some(serde_json::Value::Bool(*flag)),
            Value::Number(number) => {
                if let Some(int) = number.as_i64() {
                    Some(int.into())
                } else if let Some(uint) = number.as_u64() {
                    Some(uint.into())
                } else {
                    let float = number.as_f64().and_then(serde_json::Number::from_f64);
                    if float.is_none() {
                        self.problem(path, format!("{number} cannot be represented in JSON"));
                    }
                    float.map(serde_json::Value::Number)
                }
            }
            Value::String(text) => Some(serde_json::Value::String(text.clone())),
            Value::Sequence(items) => {
                let converted: Vec<_> = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.json(item, &path.index(index)))
                    .collect();
                converted
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(serde_json::Value::Array)
            }
            Value::Mapping(map) => {
                let mut object = serde_json::Map::new();
                let mut all_good = true;
                for (key, item) in map {
                    let key = match key {
                        Value::String(text) => text.clone(),
                        Value::Number(number) => number.to_string(),
                        Value::Bool(flag) => flag.to_string(),
                        other => {
                            self.problem(
                                path,
                                format!("keys must be strings, found {}", kind(other)),
                            );
                            all_good = false;
                            continue;
                        }
                    };
                    match self.json(item, &path.key(&key)) {
                        Some(converted) => {
                            object.insert(key, converted);
                        }
                        None => all_good = false,
                    }
                }
                all_good.then_some(serde_json::Value::Object(object))
            }
            Value::Tagged(tagged) => {
                self.problem(path, format!("YAML tag {} is not supported", tagged.tag));
                None
            }
        }
    }

    /// An IP address.
    pub fn address(&mut self, value: &Value, path: &Path) -> Option<IpAddr> {
        let text = self.string(value, path)?;
        match text.trim().parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.problem(path, format!("invalid IP address {text:?}"));
                None
            }
        }
    }

    /// A list of IP addresses.
    pub fn addresses(&mut self, value: &Value, path: &Path) -> Option<Vec<IpAddr>> {
        Some(self.each(value, path, |reader, value, path| {
            reader.address(value, &path)
        }))
    }

    /// A list of address ranges (`a`, `a - b`, `a/n`), or one range alone: the director flattens
    /// both.
    pub fn ranges(&mut self, value: &Value, path: &Path) -> Option<Vec<IpRange>> {
        let read_one = |reader: &mut Reader, value: &Value, path: &Path| {
            let text = reader.string(value, path)?;
            match IpRange::parse(&text) {
                Ok(range) => Some(range),
                Err(err) => {
                    reader.problem(path, err.to_string());
                    None
                }
            }
        };
        match value {
            Value::String(_) => read_one(self, value, path).map(|range| vec![range]),
            _ => Some(self.each(value, path, |reader, value, path| {
                read_one(reader, value, &path)
            })),
        }
    }

    /// Records a problem at `<list>[i].name` for each name seen earlier in the list.
    pub fn unique_names<'n>(
        &mut self,
        list: &Path,
        noun: &str,
        names: impl IntoIterator<Item = &'n str>,
    ) {
        let names: Vec<&str> = names.into_iter().collect();
        for (index, name) in names.iter().enumerate() {
            if names[..index].contains(name) {
                self.problem(
                    &list.index(index).key("name"),
                    format!("duplicate {noun} name {name:?}"),
                );
            }
        }
    }

    fn wrong_type(&mut self, path: &Path, expected: &str, found: &Value) {
        self.problem(path, format!("expected {expected}, found {}", kind(found)));
    }
}

impl<'a> Fields<'a> {
    /// The value under `key`; a null value counts as absent, as an empty YAML key is one.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// The path of the value under `key`.
    pub fn path(&self, key: &str) -> Path {
        self.path.key(key)
    }

    /// The value under `key`, recording a problem when it is absent.
    pub fn required(&self, reader: &mut Reader, key: &str) -> Option<&'a Value> {
        let value = self.get(key);
        if value.is_none() {
            reader.problem(&self.path(key), "missing required key");
        }
        value
    }

    /// Reads the value under `key` with `read`, recording a problem when it is absent.
    pub fn required_with<T>(
        &self,
        reader: &mut Reader,
        key: &str,
        read: impl FnOnce(&mut Reader, &'a Value, &Path) -> Option<T>,
    ) -> Option<T> {
        let value = self.required(reader, key)?;
        read(reader, value, &self.path(key))
    }

    /// Reads the value under `key` with `read` when it is there.
    pub fn optional_with<T>(
        &self,
        reader: &mut Reader,
        key: &str,
        read: impl FnOnce(&mut Reader, &'a Value, &Path) -> Option<T>,
    ) -> Option<T> {
        let value = self.get(key)?;
        read(reader, value, &self.path(key))
    }

    /// The string under `key`, which must be there.
    pub fn required_string(&self, reader: &mut Reader, key: &str) -> Option<String> {
        self.required_with(reader, key, Reader::string)
    }

    /// The string under `key`, if any.
    pub fn optional_string(&self, reader: &mut Reader, key: &str) -> Option<String> {
        self.optional_with(reader, key, Reader::string)
    }

    /// The map under `key` as JSON, empty when absent.
    pub fn object_or_empty(
        &self,
        reader: &mut Reader,
        key: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.optional_with(reader, key, Reader::object)
            .unwrap_or_default()
    }
}

/// How a value's type reads in a message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: Keys = Keys {
        known: &["name", "size", "tags"],
        ignored: &["variables"],
        unsupported: &["addons"],
    };

    fn read(text: &str) -> Result<(Option<String>, Option<u64>), Vec<Problem>> {
        let mut reader = Reader::new(Document::Manifest);
        let value = reader.parse(text);
        let result = value.as_ref().and_then(|value| {
            let fields = reader.fields(value, &Path::default(), &KEYS)?;
            let name = fields.required_string(&mut reader, "name");
            let size = fields.optional_with(&mut reader, "size", Reader::count);
            Some((name, size))
        });
        reader.finish(result)
    }

    fn messages(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(Problem::to_string).collect()
    }

    #[test]
    fn every_problem_of_a_map_is_collected() {
        let problems = read("size: -3\nextra: 1\naddons: []\nvariables: []\n").unwrap_err();
        assert_eq!(
            messages(&problems),
            [
                "extra: unknown key",
                "addons: not supported by the thin director",
                "name: missing required key",
                "size: must not be negative, found -3",
            ]
        );
    }

    #[test]
    fn null_counts_as_absent_and_ignored_keys_are_accepted() {
        let (name, size) = read("name: web\nsize:\nvariables: [a]\n").unwrap();
        assert_eq!(name.as_deref(), Some("web"));
        assert_eq!(size, None);
    }

    #[test]
    fn wrong_types_name_what_was_expected_and_found() {
        let problems = read("name: [a]\nsize: big\n").unwrap_err();
        assert_eq!(
            messages(&problems),
            [
                "name: expected a string, found a list",
                "size: expected an integer, found a string"
            ]
        );
        let problems = read("- a\n").unwrap_err();
        assert_eq!(messages(&problems), ["expected a map, found a list"]);
    }

    #[test]
    fn bad_yaml_is_one_problem_with_its_location() {
        let problems = read("name: [unclosed\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.starts_with("not valid YAML: "),
            "{problems:?}"
        );
        assert!(problems[0].message.contains("line"), "{problems:?}");
    }

    #[test]
    fn merge_keys_are_applied() {
        let (name, size) = read("variables: &base {name: web, size: 2}\n<<: *base\n").unwrap();
        assert_eq!(name.as_deref(), Some("web"));
        assert_eq!(size, Some(2));
    }

    #[test]
    fn json_conversion_keeps_structure_and_stringifies_scalar_keys() {
        let mut reader = Reader::new(Document::Manifest);
        let value = reader
            .parse("a: {1: x, true: [1, 2.5, null], b: c}\n")
            .unwrap();
        let json = reader.json(&value, &Path::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"a": {"1": "x", "true": [1, 2.5, null], "b": "c"}})
        );
        assert!(!reader.has_problems());
    }

    #[test]
    fn paths_join_keys_and_indexes() {
        let path = Path::default().key("instance_groups").index(1).key("jobs");
        assert_eq!(
            path.index(0).key("release").0,
            "instance_groups[1].jobs[0].release"
        );
    }
}
