//! Redaction of secrets in settings before an operator sees them (`bosh-agent settings`) or a log does.
//!
//! Settings carry the mbus private key, passwords, blobstore credentials and iSCSI CHAP secrets, in
//! fields whose names vary by blobstore provider. Rather than list fields, every object key that names
//! a secret has its value replaced, and every URL with a password has the password replaced.

use serde_json::Value;

use crate::model::Settings;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Key fragments that mark a secret (matched case-insensitively).
const SECRET_KEYS: &[&str] = &[
    "password",
    "private_key",
    "secret",
    "token",
    "credentials",
    "json_key",
    "access_key",
];

/// The settings document with every secret replaced, plus the update settings when there are any.
pub fn redacted_settings(settings: &Settings) -> Value {
    let mut value = serde_json::to_value(settings).unwrap_or(Value::Null);
    if settings.update_settings != Default::default() {
        if let (Value::Object(map), Ok(update)) =
            (&mut value, serde_json::to_value(&settings.update_settings))
        {
            map.insert("update_settings".to_owned(), update);
        }
    }
    redact(&mut value);
    value
}

/// Replaces secrets in a JSON value in place.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|secret| key.contains(secret)) && is_secret_value(item) {
                    *item = Value::String(REDACTED.to_owned());
                } else {
                    redact(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) => {
            if let Some(clean) = redact_url_password(text) {
                *text = clean;
            }
        }
        _ => {}
    }
}

/// Whether a value under a secret-sounding key holds a secret: flags such as `keep_root_password` and
/// empty strings do not, so an operator still sees them.
fn is_secret_value(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) => false,
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// A URL fit for logs and error texts: `scheme://user:secret@host` becomes
/// `scheme://user:<redacted>@host`; any other text is returned as it is.
pub fn redact_url(text: &str) -> String {
    redact_url_password(text).unwrap_or_else(|| text.to_owned())
}

fn redact_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let (authority, tail) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    let (userinfo, host) = authority.rsplit_once('@')?;
    let (user, _password) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:{REDACTED}@{host}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_url_passwords_are_replaced() {
        let mut value = serde_json::json!({
            "mbus": "nats://nats:nats-password@10.0.0.6:4222",
            "env": {"bosh": {"password": "$6$crypt", "mbus": {"cert": {"ca": "CA", "private_key": "KEY"}}}},
            "blobstore": {"options": {"user": "agent", "password": "pw", "secret_access_key": "s3", "endpoint": "http://h"}},
            "empty": {"password": ""},
            "keep_root_password": true
        });
        redact(&mut value);
        assert_eq!(value["mbus"], "nats://nats:<redacted>@10.0.0.6:4222");
        assert_eq!(value["env"]["bosh"]["password"], REDACTED);
        assert_eq!(
            value["env"]["bosh"]["mbus"]["cert"]["private_key"],
            REDACTED
        );
        assert_eq!(value["env"]["bosh"]["mbus"]["cert"]["ca"], "CA");
        assert_eq!(value["blobstore"]["options"]["password"], REDACTED);
        assert_eq!(value["blobstore"]["options"]["secret_access_key"], REDACTED);
        assert_eq!(value["blobstore"]["options"]["user"], "agent");
        assert_eq!(value["blobstore"]["options"]["endpoint"], "http://h");
        // An empty secret stays empty, so an operator can see it is unset.
        assert_eq!(value["empty"]["password"], "");
        assert_eq!(value["keep_root_password"], true);
    }
}
