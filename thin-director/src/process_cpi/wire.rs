//! The CPI side of the wire (`reference/director-cpi.md` §1.2–1.3; `bosh-cpi-go: rpc/json_dispatcher.go`,
//! `rpc/caller.go`): the request read from standard input, its positional arguments checked by
//! name, and the one response printed on standard output.
//!
//! The request is checked in Go's order: valid JSON, then `method`, then `arguments`. `context` is
//! accepted and ignored. An `api_version` above 2 is refused, as the Go library refuses it: this
//! CPI reports 2 from `info`, so a caller asking for more did not negotiate.

use serde_json::{Map, Value, json};

use crate::process_cpi::error::{Error, Result};

/// The highest CPI contract version this CPI speaks (reported by `info`).
pub const API_VERSION: u64 = 2;

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The method.
    pub method: String,
    /// Its positional arguments.
    pub arguments: Vec<Value>,
    /// The contract version asked for; `None` on the director's `info` probe.
    pub api_version: Option<u64>,
}

impl Request {
    /// Parses the bytes read from standard input.
    pub fn parse(bytes: &[u8]) -> Result<Request> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|err| Error::InvalidJson(err.to_string()))?;
        let Value::Object(mut fields) = value else {
            return Err(Error::InvalidJson(
                "the request is not a JSON object".to_owned(),
            ));
        };
        let method = match fields.remove("method") {
            Some(Value::String(method)) if !method.is_empty() => method,
            None | Some(Value::Null) | Some(Value::String(_)) => return Err(Error::NoMethod),
            Some(_) => return Err(Error::InvalidJson("'method' is not a string".to_owned())),
        };
        let arguments = match fields.remove("arguments") {
            Some(Value::Array(arguments)) => arguments,
            None | Some(Value::Null) => return Err(Error::NoArguments),
            Some(_) => return Err(Error::InvalidJson("'arguments' is not an array".to_owned())),
        };
        let api_version = match fields.remove("api_version") {
            None | Some(Value::Null) => None,
            Some(Value::Number(number)) => match number.as_u64() {
                Some(version) if version <= API_VERSION => Some(version),
                Some(version) => return Err(Error::ApiVersion(version)),
                None => {
                    return Err(Error::InvalidJson(
                        "'api_version' is not a non-negative integer".to_owned(),
                    ));
                }
            },
            Some(_) => {
                return Err(Error::InvalidJson(
                    "'api_version' is not a non-negative integer".to_owned(),
                ));
            }
        };
        Ok(Request {
            method,
            arguments,
            api_version,
        })
    }

    /// The request's arguments, read by name.
    pub fn arguments(&self) -> Arguments<'_> {
        Arguments {
            method: &self.method,
            values: &self.arguments,
        }
    }

    /// Whether the caller speaks version 2 (`create_vm` then answers `[cid, networks]`). A request
    /// without `api_version` comes from a caller of the first contract.
    pub fn is_v2(&self) -> bool {
        self.api_version.is_some_and(|version| version >= 2)
    }
}

/// A request's positional arguments; every accessor names the argument in its error.
#[derive(Debug, Clone, Copy)]
pub struct Arguments<'a> {
    method: &'a str,
    values: &'a [Value],
}

impl<'a> Arguments<'a> {
    /// Argument `index` (from 0), which must be a string.
    pub fn string(&self, index: usize, name: &'static str) -> Result<&'a str> {
        match self.get(index, name)? {
            Value::String(text) => Ok(text),
            other => Err(self.wrong(index, name, "a string", other)),
        }
    }

    /// Argument `index`, a string or null (or left out).
    pub fn optional_string(&self, index: usize, name: &'static str) -> Result<Option<&'a str>> {
        match self.values.get(index) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong(index, name, "a string or null", other)),
        }
    }

    /// Argument `index`, an object; null is read as an empty one (Go decodes null into a nil map).
    pub fn object(&self, index: usize, name: &'static str) -> Result<Map<String, Value>> {
        match self.get(index, name)? {
            Value::Object(fields) => Ok(fields.clone()),
            Value::Null => Ok(Map::new()),
            other => Err(self.wrong(index, name, "an object", other)),
        }
    }

    /// Argument `index`, an array of strings; null is read as an empty one.
    pub fn strings(&self, index: usize, name: &'static str) -> Result<Vec<String>> {
        let wrong = |other: &Value| self.wrong(index, name, "an array of strings", other);
        match self.get(index, name)? {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| wrong(item)))
                .collect(),
            other => Err(wrong(other)),
        }
    }

    /// Argument `index`, a non-negative integer.
    pub fn size(&self, index: usize, name: &'static str) -> Result<u64> {
        let value = self.get(index, name)?;
        value
            .as_u64()
            .ok_or_else(|| self.wrong(index, name, "a non-negative integer", value))
    }

    fn get(&self, index: usize, name: &'static str) -> Result<&'a Value> {
        self.values.get(index).ok_or_else(|| Error::Argument {
            method: self.method.to_owned(),
            position: index + 1,
            name,
            problem: "is missing".to_owned(),
        })
    }

    fn wrong(&self, index: usize, name: &'static str, expected: &str, got: &Value) -> Error {
        Error::Argument {
            method: self.method.to_owned(),
            position: index + 1,
            name,
            problem: format!("must be {expected}, got {}", kind(got)),
        }
    }
}

/// Renders the one response: `{"result":..,"error":null,"log":""}`, or the error with its type
/// and `ok_to_retry` false and a null result.
pub fn render_response(outcome: &Result<Value>) -> String {
    let response = match outcome {
        Ok(result) => json!({"result": result, "error": null, "log": ""}),
        Err(error) => json!({
            "result": null,
            "error": {
                "type": error.cloud_type(),
                "message": error.message(),
                "ok_to_retry": false,
            },
            "log": "",
        }),
    };
    response.to_string()
}

/// How a JSON value is named in an argument error.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(bytes: &str) -> String {
        let error = Request::parse(bytes.as_bytes()).unwrap_err();
        format!("{}: {}", error.cloud_type(), error.message())
    }

    #[test]
    fn a_request_parses_with_its_version() {
        let request = Request::parse(
            br#"{"method":"has_vm","arguments":["vm-1"],"context":{"director_uuid":"d"},"api_version":2}"#,
        )
        .unwrap();
        assert_eq!(
            request,
            Request {
                method: "has_vm".into(),
                arguments: vec![json!("vm-1")],
                api_version: Some(2),
            }
        );
        assert!(request.is_v2());
        let probe = Request::parse(br#"{"method":"info","arguments":[]}"#).unwrap();
        assert_eq!(probe.api_version, None);
        assert!(!probe.is_v2());
    }

    #[test]
    fn malformed_requests_get_the_go_cpi_errors() {
        let cases = [
            (
                "{-}",
                "Bosh::Clouds::CpiError: Must provide valid JSON payload: key must be a string at line 1 column 2",
            ),
            (
                "[1]",
                "Bosh::Clouds::CpiError: Must provide valid JSON payload: the request is not a JSON object",
            ),
            (
                r#"{"arguments":[]}"#,
                "Bosh::Clouds::CpiError: Must provide 'method' key",
            ),
            (
                r#"{"method":"","arguments":[]}"#,
                "Bosh::Clouds::CpiError: Must provide 'method' key",
            ),
            (
                r#"{"method":"create_vm"}"#,
                "Bosh::Clouds::CpiError: Must provide 'arguments' key",
            ),
            (
                r#"{"method":"create_vm","arguments":null}"#,
                "Bosh::Clouds::CpiError: Must provide 'arguments' key",
            ),
            (
                r#"{"method":"create_vm","arguments":{}}"#,
                "Bosh::Clouds::CpiError: Must provide valid JSON payload: 'arguments' is not an array",
            ),
            (
                r#"{"method":"info","arguments":[],"api_version":3}"#,
                "Bosh::Clouds::CpiError: api_version 3 is not supported: the highest this CPI speaks is 2",
            ),
            (
                r#"{"method":"info","arguments":[],"api_version":"2"}"#,
                "Bosh::Clouds::CpiError: Must provide valid JSON payload: 'api_version' is not a non-negative integer",
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(parse_error(request), expected, "{request}");
        }
    }

    #[test]
    fn argument_errors_name_the_argument() {
        let request = Request::parse(
            br#"{"method":"create_vm","arguments":[42,"sc",null,{},["d",1],"env"]}"#,
        )
        .unwrap();
        let args = request.arguments();
        let message = |result: Result<()>| result.unwrap_err().message();
        assert_eq!(
            message(args.string(0, "agent_id").map(drop)),
            "create_vm argument 1 (agent_id) must be a string, got a number"
        );
        assert_eq!(args.string(1, "stemcell_cid").unwrap(), "sc");
        assert!(args.object(2, "cloud_properties").unwrap().is_empty());
        assert_eq!(
            message(args.strings(4, "disk_cids").map(drop)),
            "create_vm argument 5 (disk_cids) must be an array of strings, got a number"
        );
        assert_eq!(
            message(args.object(5, "environment").map(drop)),
            "create_vm argument 6 (environment) must be an object, got a string"
        );
        assert_eq!(
            message(args.string(6, "extra").map(drop)),
            "create_vm argument 7 (extra) is missing"
        );
        assert_eq!(args.optional_string(6, "vm_cid").unwrap(), None);
        let sizes = Request::parse(br#"{"method":"create_disk","arguments":[-1]}"#).unwrap();
        assert_eq!(
            message(sizes.arguments().size(0, "size").map(drop)),
            "create_disk argument 1 (size) must be a non-negative integer, got a number"
        );
    }

    #[test]
    fn responses_have_result_error_and_log() {
        assert_eq!(
            render_response(&Ok(json!(["vm-1", {}]))),
            r#"{"error":null,"log":"","result":["vm-1",{}]}"#
        );
        assert_eq!(
            render_response(&Err(Error::VmNotFound("vm-1".into()))),
            r#"{"error":{"message":"VM 'vm-1' not found","ok_to_retry":false,"type":"Bosh::Clouds::VMNotFound"},"log":"","result":null}"#
        );
        // The director's strict check accepts both.
        for outcome in [Ok(json!(true)), Err(Error::NoArguments)] {
            let rendered = render_response(&outcome);
            crate::cpi::wire::parse_response(rendered.as_bytes()).unwrap();
        }
    }
}
