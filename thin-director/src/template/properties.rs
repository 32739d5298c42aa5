//! The properties a job's templates see: the declared properties of its spec, each with the given
//! value or its default, as the director's `DeploymentPlan::Job#bind_properties` binds them.

use serde_json::{Map, Value};

use crate::template::{Error, JobSpec, Result};

/// Binds `given` (the instance's properties for this job, merged from the manifest) to the
/// properties `spec` declares: each declared dotted name takes the given value at that name, or
/// its default when the value is absent or null, and is set at that name in the result. Given
/// properties the spec does not declare are left out, as BOSH leaves them out. A given value that
/// is not a hash where a declared name needs one is refused with BOSH's error.
pub fn bind_properties(spec: &JobSpec, given: &Value) -> Result<Value> {
    let mut bound = Map::new();
    for (name, definition) in &spec.properties {
        let keys: Vec<&str> = name.split('.').collect();
        let value = match lookup(given, &keys) {
            Ok(Some(value)) => value.clone(),
            Ok(None) => definition.default.clone().unwrap_or(Value::Null),
            Err(received) => {
                return Err(Error::PropertyType {
                    job: spec.name.clone(),
                    property: name.clone(),
                    received,
                });
            }
        };
        set(&mut bound, &keys, value);
    }
    Ok(Value::Object(bound))
}

/// The non-null value at `keys` in `root`, or the Ruby class name of the non-hash found on the way
/// (BOSH's `validate_properties_format`: every step it indexes must be a hash).
fn lookup<'a>(
    root: &'a Value,
    keys: &[&str],
) -> std::result::Result<Option<&'a Value>, &'static str> {
    let mut current = root;
    for key in keys {
        match current {
            Value::Object(map) => match map.get(*key) {
                None | Some(Value::Null) => return Ok(None),
                Some(value) => current = value,
            },
            Value::Null => return Ok(None),
            other => return Err(ruby_class(other)),
        }
    }
    Ok(Some(current))
}

/// Sets `value` at `keys`, creating (or replacing non-hash values with) hashes on the way.
fn set(map: &mut Map<String, Value>, keys: &[&str], value: Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut current = map;
    for key in parents {
        let entry = current
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else {
            // Made an object just above.
            return;
        };
        current = next;
    }
    current.insert((*last).to_owned(), value);
}

/// The class Ruby gives a JSON value.
fn ruby_class(value: &Value) -> &'static str {
    match value {
        Value::Null => "NilClass",
        Value::Bool(true) => "TrueClass",
        Value::Bool(false) => "FalseClass",
        Value::Number(n) if n.is_f64() => "Float",
        Value::Number(_) => "Integer",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Hash",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::template::PropertyDefinition;

    fn spec(properties: &[(&str, Option<Value>)]) -> JobSpec {
        JobSpec {
            name: "web".into(),
            properties: properties
                .iter()
                .map(|(name, default)| {
                    (
                        name.to_string(),
                        PropertyDefinition {
                            default: default.clone(),
                            ..PropertyDefinition::default()
                        },
                    )
                })
                .collect(),
            ..JobSpec::default()
        }
    }

    #[test]
    fn given_values_win_over_defaults_at_dotted_names() {
        let spec = spec(&[
            ("port", Some(json!(80))),
            ("tls.enabled", Some(json!(false))),
            ("tls.cert.pem", None),
            ("log.level", Some(json!("info"))),
        ]);
        let given = json!({"port": 8443, "tls": {"enabled": true, "cert": {"pem": "PEM"}}});
        assert_eq!(
            bind_properties(&spec, &given).unwrap(),
            json!({
                "port": 8443,
                "tls": {"enabled": true, "cert": {"pem": "PEM"}},
                "log": {"level": "info"}
            })
        );
    }

    #[test]
    fn absent_or_null_values_take_the_default_or_stay_null() {
        let spec = spec(&[
            ("a.b", Some(json!([1, 2]))),
            ("c", None),
            ("d", Some(json!({"x": 1}))),
        ]);
        let given = json!({"a": {"b": null}});
        assert_eq!(
            bind_properties(&spec, &given).unwrap(),
            json!({"a": {"b": [1, 2]}, "c": null, "d": {"x": 1}})
        );
        assert_eq!(
            bind_properties(&spec, &Value::Null).unwrap(),
            json!({"a": {"b": [1, 2]}, "c": null, "d": {"x": 1}})
        );
    }

    #[test]
    fn a_false_or_empty_value_is_a_value() {
        let spec = spec(&[("flag", Some(json!(true))), ("name", Some(json!("x")))]);
        assert_eq!(
            bind_properties(&spec, &json!({"flag": false, "name": ""})).unwrap(),
            json!({"flag": false, "name": ""})
        );
    }

    #[test]
    fn undeclared_properties_are_left_out() {
        let spec = spec(&[("a.b", None)]);
        let given = json!({"a": {"b": 1, "c": 2}, "other": 3});
        assert_eq!(
            bind_properties(&spec, &given).unwrap(),
            json!({"a": {"b": 1}})
        );
    }

    #[test]
    fn a_whole_hash_can_be_one_property() {
        let spec = spec(&[("users", Some(json!({})))]);
        let given = json!({"users": {"admin": {"password": "p"}}});
        assert_eq!(bind_properties(&spec, &given).unwrap(), given);
    }

    #[test]
    fn a_non_hash_on_the_way_is_refused_in_boshs_words() {
        let spec = spec(&[("a.b.c", None)]);
        for (given, class) in [
            (json!({"a": "text"}), "String"),
            (json!({"a": {"b": 3}}), "Integer"),
            (json!({"a": [1]}), "Array"),
            (json!({"a": {"b": 1.5}}), "Float"),
            (json!({"a": true}), "TrueClass"),
        ] {
            let err = bind_properties(&spec, &given).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("job 'web': Property 'a.b.c' expects a hash, but received '{class}'")
            );
        }
    }
}
