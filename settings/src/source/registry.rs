//! The registry of CPI API v1 (`infrastructure/registry.go` before bosh-agent PR #287).
//!
//! Older CPIs (OpenStack, AWS and vSphere CPIs before API v2) did not put the settings in user data:
//! they stored them in a registry and put its endpoint in user data. The agent then asks
//! `GET <endpoint>/instances/<id>/settings`, with basic auth from the endpoint URL, and gets
//! `{"settings": "<the settings JSON, as a string>"}`. The Go agent dropped this in 2022; we keep it so
//! stemcells built with this agent still boot under those CPIs.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::gojson;
use crate::model::Settings;
use crate::source::Error;
use crate::source::http_client::{HttpClient, redact_url_str};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RegistryAnswer {
    settings: String,
}

/// Fetches the settings of the VM `instance_id` from the registry at `endpoint`, with `client`'s retries.
pub(crate) async fn fetch_with(
    client: &HttpClient,
    endpoint: &str,
    instance_id: &str,
) -> Result<Settings, Error> {
    // The id comes from user data or the metadata service: escape it as one path segment.
    let mut url = url::Url::parse(endpoint).map_err(|source| Error::Url {
        url: redact_url_str(endpoint),
        source,
    })?;
    url.path_segments_mut()
        .map_err(|()| Error::Url {
            url: redact_url_str(endpoint),
            source: url::ParseError::RelativeUrlWithCannotBeABaseBase,
        })?
        .pop_if_empty()
        .extend(["instances", instance_id, "settings"]);
    let url = url.to_string();
    let body = client.get_ok(&url, &BTreeMap::new()).await?;
    let what = redact_url_str(&url);
    let answer: RegistryAnswer = gojson::from_slice(&body).map_err(|source| Error::Parse {
        what: format!("registry answer from {what}"),
        source,
    })?;
    if answer.settings.is_empty() {
        return Err(Error::NoAgentId {
            what: format!("registry answer from {what}"),
        });
    }
    Settings::parse(answer.settings.as_bytes()).map_err(|source| Error::Parse {
        what: format!("settings in the registry answer from {what}"),
        source,
    })
}
