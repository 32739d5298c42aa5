//! The CPI's wire format (`reference/director-cpi.md` §1.2–1.3): one JSON request on standard input,
//! one JSON response on standard output.
//!
//! Responses are checked as strictly as the director's `external_cpi.rb` does: an object with the
//! keys `result`, `error` and `log`; `error` null or an object with a string `type`, a string
//! `message` and a boolean `ok_to_retry`; `log` a string. Anything else is an invalid response that
//! says what was wrong.

use serde::Serialize;
use serde_json::{Map, Value};

/// A CPI request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Request<'a> {
    /// The method.
    pub method: &'a str,
    /// Its positional arguments (always present, empty for `info`).
    pub arguments: &'a [Value],
    /// `director_uuid`, `request_id`, and `vm.stemcell.api_version` when known.
    pub context: Value,
    /// The contract version wanted; left out on the `info` probe, as the director does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<u32>,
}

/// A CPI's error, as it sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudError {
    /// `Bosh::Clouds::...`.
    pub kind: String,
    /// The message.
    pub message: String,
    /// Whether the call may be retried.
    pub ok_to_retry: bool,
}

/// A parsed CPI response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// `result` (null when `error` is set).
    pub result: Value,
    /// `error`.
    pub error: Option<CloudError>,
    /// `log`, for the task's CPI log.
    pub log: String,
}

/// Parses `stdout` as a CPI response; the error says what is wrong with it.
pub fn parse_response(stdout: &[u8]) -> Result<Response, String> {
    let value: Value =
        serde_json::from_slice(stdout).map_err(|err| format!("response is not JSON ({err})"))?;
    let Value::Object(mut fields) = value else {
        return Err("response is not a JSON object".to_owned());
    };
    let result = take(&mut fields, "result")?;
    let error = match take(&mut fields, "error")? {
        Value::Null => None,
        Value::Object(mut error) => Some(CloudError {
            kind: string(&mut error, "error.type")?,
            message: string(&mut error, "error.message")?,
            ok_to_retry: match take(&mut error, "error.ok_to_retry")? {
                Value::Bool(ok) => ok,
                _ => return Err("`error.ok_to_retry` is not a boolean".to_owned()),
            },
        }),
        _ => return Err("`error` is neither null nor an object".to_owned()),
    };
    let log = match take(&mut fields, "log")? {
        Value::String(log) => log,
        _ => return Err("`log` is not a string".to_owned()),
    };
    Ok(Response { result, error, log })
}

fn take(fields: &mut Map<String, Value>, key: &str) -> Result<Value, String> {
    let name = key.rsplit('.').next().unwrap_or(key);
    fields
        .remove(name)
        .ok_or_else(|| format!("response has no `{key}`"))
}

fn string(fields: &mut Map<String, Value>, key: &str) -> Result<String, String> {
    match take(fields, key)? {
        Value::String(text) => Ok(text),
        _ => Err(format!("`{key}` is not a string")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_good_response_and_a_cloud_error_parse() {
        let ok = parse_response(br#"{"result":["vm-1",{}],"error":null,"log":"made it"}"#).unwrap();
        assert_eq!(ok.result, json!(["vm-1", {}]));
        assert_eq!(ok.error, None);
        assert_eq!(ok.log, "made it");
        let failed = parse_response(
            br#"{"result":null,"error":{"type":"Bosh::Clouds::VMCreationFailed","message":"no capacity","ok_to_retry":true},"log":""}"#,
        )
        .unwrap();
        assert_eq!(
            failed.error,
            Some(CloudError {
                kind: "Bosh::Clouds::VMCreationFailed".into(),
                message: "no capacity".into(),
                ok_to_retry: true
            })
        );
    }

    #[test]
    fn malformed_responses_say_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"",
                "response is not JSON (EOF while parsing a value at line 1 column 0)",
            ),
            (b"[1]", "response is not a JSON object"),
            (br#"{"error":null,"log":""}"#, "response has no `result`"),
            (br#"{"result":1,"log":""}"#, "response has no `error`"),
            (br#"{"result":1,"error":null}"#, "response has no `log`"),
            (
                br#"{"result":1,"error":null,"log":3}"#,
                "`log` is not a string",
            ),
            (
                br#"{"result":1,"error":"boom","log":""}"#,
                "`error` is neither null nor an object",
            ),
            (
                br#"{"result":1,"error":{"type":"X","message":"m"},"log":""}"#,
                "response has no `error.ok_to_retry`",
            ),
            (
                br#"{"result":1,"error":{"type":1,"message":"m","ok_to_retry":false},"log":""}"#,
                "`error.type` is not a string",
            ),
            (
                br#"{"result":1,"error":{"type":"X","message":"m","ok_to_retry":"no"},"log":""}"#,
                "`error.ok_to_retry` is not a boolean",
            ),
        ];
        for (stdout, expected) in cases {
            assert_eq!(
                parse_response(stdout).unwrap_err(),
                *expected,
                "{}",
                String::from_utf8_lossy(stdout)
            );
        }
    }

    #[test]
    fn the_request_leaves_out_an_unknown_api_version() {
        let probe = Request {
            method: "info",
            arguments: &[],
            context: json!({"director_uuid": "d"}),
            api_version: None,
        };
        assert_eq!(
            serde_json::to_string(&probe).unwrap(),
            r#"{"method":"info","arguments":[],"context":{"director_uuid":"d"}}"#
        );
    }
}
