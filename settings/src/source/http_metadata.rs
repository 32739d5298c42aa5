//! The `HTTP` source: an HTTP metadata service such as AWS's IMDS or OpenStack's
//! (`infrastructure/http_metadata_service.go`).
//!
//! With a `TokenPath` it speaks IMDSv2: `PUT <URI><TokenPath>` with
//! `X-aws-ec2-metadata-token-ttl-seconds: 300`; a 200 answer is a token sent as
//! `X-aws-ec2-metadata-token` on every later request (any other status means IMDSv1). User data at
//! `UserDataPath` is JSON or base64url JSON. When it names a registry instead of carrying settings, the
//! VM is identified by `server.name`, else by the instance id at `InstanceIDPath`, and the registry
//! answers. The SSH key at `SSHKeysPath` is optional: 404 means none.
//!
//! Not here yet: the Go agent first brings up DHCP on `eth0` when no interface is configured; that
//! needs the Linux platform's networking and arrives with it.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};

use crate::agent_config::HttpSourceOptions;
use crate::model::Settings;
use crate::source::http_client::{self, HttpClient, redact_url_str};
use crate::source::{BoxFuture, Error, Retry, Source, UserData, registry};

/// The IMDSv2 token request header and the TTL the Go agent asks for.
const TOKEN_TTL_HEADER: (&str, &str) = ("X-aws-ec2-metadata-token-ttl-seconds", "300");
/// The header that carries the IMDSv2 token.
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";

/// Reads settings from an HTTP metadata service.
#[derive(Debug, Clone)]
pub struct HttpMetadataSource {
    options: HttpSourceOptions,
    client: HttpClient,
}

impl HttpMetadataSource {
    /// A source for `options`; fails when `URI` is not a URL or a header cannot be sent.
    pub fn try_new(options: &HttpSourceOptions, retry: Retry) -> Result<HttpMetadataSource, Error> {
        http_client::validate_options(&options.uri, &options.headers)?;
        Ok(HttpMetadataSource {
            options: options.clone(),
            client: HttpClient::new(retry),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.options.uri, path)
    }

    /// The configured headers plus the IMDSv2 token, when the service hands one out.
    async fn headers(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut headers = self.options.headers.clone();
        if self.options.token_path.is_empty() {
            return Ok(headers);
        }
        let token_headers =
            BTreeMap::from([(TOKEN_TTL_HEADER.0.to_owned(), TOKEN_TTL_HEADER.1.to_owned())]);
        let answer = self
            .client
            .send(
                Method::PUT,
                &self.url(&self.options.token_path),
                &token_headers,
            )
            .await?;
        if answer.status == StatusCode::OK {
            headers.insert(
                TOKEN_HEADER.to_owned(),
                String::from_utf8_lossy(&answer.body).into_owned(),
            );
        } else {
            tracing::debug!(status = %answer.status, "no IMDSv2 token, using IMDSv1");
        }
        Ok(headers)
    }

    async fn instance_id(&self, headers: &BTreeMap<String, String>) -> Result<String, Error> {
        if self.options.instance_id_path.is_empty() {
            return Ok(String::new());
        }
        let body = self
            .client
            .get_ok(&self.url(&self.options.instance_id_path), headers)
            .await?;
        Ok(String::from_utf8_lossy(&body).trim().to_owned())
    }
}

impl Source for HttpMetadataSource {
    fn describe(&self) -> String {
        format!(
            "HTTP {}",
            redact_url_str(&self.url(&self.options.user_data_path))
        )
    }

    fn settings(&self) -> BoxFuture<'_, Result<Settings, Error>> {
        Box::pin(async move {
            let headers = self.headers().await?;
            let url = self.url(&self.options.user_data_path);
            let body = self.client.get_ok(&url, &headers).await?;
            let user_data = UserData::parse(&body, &redact_url_str(&url))?;
            let Some(endpoint) = user_data.registry_endpoint() else {
                return Ok(user_data.settings);
            };
            let id = if user_data.server_name.is_empty() {
                self.instance_id(&headers).await?
            } else {
                user_data.server_name.clone()
            };
            if id.is_empty() {
                return Err(Error::NoRegistryId {
                    endpoint: redact_url_str(endpoint),
                });
            }
            registry::fetch_with(&self.client, endpoint, &id).await
        })
    }

    fn public_ssh_key(&self) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(async move {
            if self.options.ssh_keys_path.is_empty() {
                return Ok(None);
            }
            let headers = self.headers().await?;
            let url = self.url(&self.options.ssh_keys_path);
            let answer = self.client.send(Method::GET, &url, &headers).await?;
            if answer.status == StatusCode::NOT_FOUND {
                tracing::warn!(url = %redact_url_str(&url), "the metadata service has no SSH key");
                return Ok(None);
            }
            if !answer.status.is_success() {
                return Err(Error::Status {
                    url: redact_url_str(&url),
                    status: answer.status.as_u16(),
                    attempts: answer.attempts,
                });
            }
            let key = String::from_utf8_lossy(&answer.body).trim().to_owned();
            Ok((!key.is_empty()).then_some(key))
        })
    }
}
