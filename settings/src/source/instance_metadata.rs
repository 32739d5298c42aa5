//! The `InstanceMetadata` source: raw settings JSON at one URL of a metadata service, with custom
//! headers (`infrastructure/instance_metadata_settings_source.go`; GCP- and Azure-style CPIs).

use crate::agent_config::InstanceMetadataSourceOptions;
use crate::model::Settings;
use crate::source::http_client::{self, HttpClient, redact_url_str};
use crate::source::{BoxFuture, Error, Retry, Source};

/// Reads settings from one metadata URL.
#[derive(Debug, Clone)]
pub struct InstanceMetadataSource {
    options: InstanceMetadataSourceOptions,
    client: HttpClient,
}

impl InstanceMetadataSource {
    /// A source for `options`; fails when `URI` is not a URL or a header cannot be sent.
    pub fn try_new(
        options: &InstanceMetadataSourceOptions,
        retry: Retry,
    ) -> Result<InstanceMetadataSource, Error> {
        http_client::validate_options(&options.uri, &options.headers)?;
        Ok(InstanceMetadataSource {
            options: options.clone(),
            client: HttpClient::new(retry),
        })
    }

    fn url(&self) -> String {
        format!("{}{}", self.options.uri, self.options.settings_path)
    }
}

impl Source for InstanceMetadataSource {
    fn describe(&self) -> String {
        format!("InstanceMetadata {}", redact_url_str(&self.url()))
    }

    fn settings(&self) -> BoxFuture<'_, Result<Settings, Error>> {
        Box::pin(async move {
            let url = self.url();
            let body = self.client.get_ok(&url, &self.options.headers).await?;
            Settings::parse(&body).map_err(|source| Error::Parse {
                what: redact_url_str(&url),
                source,
            })
        })
    }

    /// This source has no SSH key, as in Go.
    fn public_ssh_key(&self) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(async { Ok(None) })
    }
}
