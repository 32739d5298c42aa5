//! User data: the document an HTTP metadata service or a config drive hands over
//! (`infrastructure/metadata_service_interface.go`, `UserDataContentsType`).
//!
//! It is a settings document at the top level, plus, for CPIs of API v1, pointers to the registry:
//! `server.name` (the VM's name, which the registry knows it by), `registry.endpoint`, and
//! `dns.nameserver`. Metadata services may serve it as JSON or as base64url (no padding), possibly in
//! quotes.

use base64::Engine as _;
use serde::Deserialize;

use crate::gojson;
use crate::model::Settings;
use crate::source::Error;

/// Parsed user data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserData {
    /// The settings at the top level (empty `agent_id` when the registry holds them).
    pub settings: Settings,
    /// `registry.endpoint`, e.g. `http://admin:admin@10.0.0.5:25777`.
    pub registry_endpoint: String,
    /// `server.name`.
    pub server_name: String,
    /// `dns.nameserver`: the servers the registry's host name resolves with. Accepted and reported; the
    /// agent resolves with the system resolver.
    pub dns_nameservers: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Pointers {
    registry: Registry,
    server: Server,
    dns: Dns,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Registry {
    endpoint: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Server {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Dns {
    nameserver: Vec<String>,
}

impl UserData {
    /// Parses user data from `what` (a URL or a path, for error texts): JSON, or else base64url JSON.
    pub fn parse(bytes: &[u8], what: &str) -> Result<UserData, Error> {
        let value: serde_json::Value = match serde_json::from_slice(bytes) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            // A JSON string (quoted base64) or anything that is not JSON: try base64url.
            _ => {
                let text = String::from_utf8_lossy(bytes).replace('"', "");
                let text = text.trim().trim_end_matches('=');
                let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text)
                    .map_err(|source| Error::UserDataEncoding {
                        what: what.to_owned(),
                        source,
                    })?;
                serde_json::from_slice(&decoded).map_err(|err| Error::Parse {
                    what: format!("base64url-decoded user data from {what}"),
                    source: gojson::Error {
                        path: String::new(),
                        message: err.to_string(),
                    },
                })?
            }
        };
        let parse_error = |source| Error::Parse {
            what: format!("user data from {what}"),
            source,
        };
        let settings: Settings = gojson::from_value(value.clone()).map_err(parse_error)?;
        let pointers: Pointers = gojson::from_value(value).map_err(parse_error)?;
        Ok(UserData {
            settings,
            registry_endpoint: pointers.registry.endpoint,
            server_name: pointers.server.name,
            dns_nameservers: pointers.dns.nameserver,
        })
    }

    /// The registry to ask, when the user data carries no settings of its own but names one.
    pub fn registry_endpoint(&self) -> Option<&str> {
        (self.settings.agent_id.is_empty() && !self.registry_endpoint.is_empty())
            .then_some(self.registry_endpoint.as_str())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn plain_json_user_data_is_settings() {
        let user_data = UserData::parse(br#"{"agent_id":"a1","mbus":"nats://x"}"#, "test").unwrap();
        assert_eq!(user_data.settings.agent_id, "a1");
        assert_eq!(user_data.registry_endpoint(), None);
    }

    #[test]
    fn base64url_user_data_is_decoded_with_or_without_quotes_and_padding() {
        let json = br#"{"agent_id":"a2","env":{"bosh":{"password":"~~??"}}}"#;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        assert!(
            encoded.contains('-') || encoded.contains('_'),
            "exercise the URL alphabet: {encoded}"
        );
        for body in [
            encoded.clone(),
            format!("\"{encoded}\""),
            format!("{encoded}==\n"),
        ] {
            let user_data = UserData::parse(body.as_bytes(), "test").unwrap();
            assert_eq!(user_data.settings.agent_id, "a2");
            assert_eq!(user_data.settings.env.bosh.password, "~~??");
        }
    }

    #[test]
    fn registry_pointers_are_read() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/shared/http-metadata-user-data-registry.json"
        ))
        .unwrap();
        let user_data = UserData::parse(&bytes, "fixture").unwrap();
        assert_eq!(user_data.server_name, "vm-384sd4-r7re9e");
        assert_eq!(
            user_data.registry_endpoint(),
            Some("http://192.168.0.255:8080/client/api")
        );
        assert_eq!(user_data.dns_nameservers, vec!["10.234.50.180".to_owned()]);
    }

    #[test]
    fn garbage_is_refused_with_the_place() {
        let err = UserData::parse(b"not json, not base64!", "http://h/user-data").unwrap_err();
        assert_eq!(
            err.to_string(),
            "decoding user data from http://h/user-data: neither JSON nor base64url"
        );
    }
}
