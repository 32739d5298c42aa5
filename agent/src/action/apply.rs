//! `apply` (`agent/action/apply.go`): make the instance what the spec says. DHCP networks of the spec
//! get their addresses from the settings, whose DHCP networks get theirs from the default route
//! (Go's `GetSettings`, [`resolve_dhcp_settings`]); when `configuration_hash` is set, every job and package is
//! installed and enabled and the ones no longer wanted are removed; then the filtered spec is saved as
//! `bosh/spec.json` and `instance/{id,az,name,deployment}` are written. Answers `"applied"`.
//!
//! With a configuration hash, the log rotation of the jobs' logs is set up at the spec's
//! `properties.logging.max_log_file_size` (50M by default), as Go's applier does (a failure is
//! Go's "Logrotate setup failed"), and the supervisor lets go of the old jobs, as Go's
//! `RemoveAllJobs` and monit reload do: their processes are left alone, unwatched, until `start`
//! loads the new jobs' monit files.

use std::sync::Arc;

use jobs::apply_spec::ApplySpec;
use serde_json::Value;

use crate::action::{ActionSpec, Context, Invocation, Result};

/// `apply`.
pub const ACTION: ActionSpec = ActionSpec::task("apply", |context, invocation| {
    Box::pin(run(context, invocation))
});

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let spec: ApplySpec = invocation.args.get(0)?;
    let networks = context.resolved_networks().await?;
    let applied = context.installer().await?.apply(spec, &networks).await?;
    if !applied.configuration_hash.is_empty() {
        let size = match applied.properties.logging.max_log_file_size.as_str() {
            "" => platform::logrotate::DEFAULT_MAX_LOG_FILE_SIZE.to_owned(),
            size => size.to_owned(),
        };
        let base = context.dirs.base_dir().to_owned();
        let platform = context.platform.clone();
        super::blocking(move || {
            platform
                .setup_logrotate(&base, &size)
                .map_err(|source| -> super::Error { Box::new(LogrotateFailed(source)) })
        })
        .await?;
        context.supervisor.load_jobs(Vec::new())?;
    }
    Ok(Value::from("applied"))
}

/// Go's wrapping of a log rotation failure.
#[derive(Debug, thiserror::Error)]
#[error("Logrotate setup failed")]
struct LogrotateFailed(#[source] platform::logrotate::Error);

/// Fills the address, netmask and gateway of every DHCP network of `networks` whose prefix is
/// unset, `32` or `128` from `default_network` (IPv6 for `128`), as Go's `GetSettings` does; the
/// first failure is logged and ends the filling (the networks left keep no address, as in Go).
pub fn resolve_dhcp_settings(
    networks: &mut settings::model::Networks,
    default_network: impl Fn(
        bool,
    )
        -> std::result::Result<platform::net::DefaultNetwork, platform::net::Error>,
) {
    for (name, network) in &mut networks.0 {
        if !network.is_dhcp() || !["", "32", "128"].contains(&network.prefix.as_str()) {
            continue;
        }
        match default_network(network.prefix == "128") {
            Ok(found) => {
                network.ip = found.ip;
                network.netmask = found.netmask;
                network.gateway = found.gateway;
                network.resolved = true;
            }
            Err(err) => {
                tracing::error!(network = %name, error = %err, "Failed retrieving default network");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::net::{DefaultNetwork, Error};

    fn networks(json: &str) -> settings::model::Networks {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn dhcp_networks_get_the_default_routes_address_and_static_ones_keep_theirs() {
        let mut nets = networks(
            r#"{"dyn":{"type":"dynamic","mac":"aa"},
                "v6":{"type":"dynamic","prefix":"128"},
                "wide":{"type":"dynamic","prefix":"24"},
                "static":{"ip":"10.0.0.5","netmask":"255.255.255.0","gateway":"10.0.0.1"}}"#,
        );
        resolve_dhcp_settings(&mut nets, |ipv6| {
            Ok(if ipv6 {
                DefaultNetwork {
                    ip: "fd00::15".into(),
                    netmask: "ffff:ffff:ffff:ffff::".into(),
                    gateway: "fe80::1".into(),
                }
            } else {
                DefaultNetwork {
                    ip: "10.0.2.15".into(),
                    netmask: "255.255.255.0".into(),
                    gateway: "10.0.2.2".into(),
                }
            })
        });
        let dynamic = &nets.0["dyn"];
        assert_eq!(
            (
                dynamic.ip.as_str(),
                dynamic.netmask.as_str(),
                dynamic.gateway.as_str()
            ),
            ("10.0.2.15", "255.255.255.0", "10.0.2.2")
        );
        assert!(dynamic.resolved);
        assert_eq!(nets.0["v6"].ip, "fd00::15");
        assert_eq!(
            nets.0["wide"].ip, "",
            "a prefix other than 32 or 128 is left alone"
        );
        assert_eq!(nets.0["static"].ip, "10.0.0.5");
        assert!(!nets.0["static"].resolved);

        // A failure ends the filling and changes nothing.
        let mut nets = networks(r#"{"a":{"type":"dynamic"},"b":{"type":"dynamic"}}"#);
        resolve_dhcp_settings(&mut nets, |_| {
            Err(Error::DefaultNetwork("Failed to find default route".into()))
        });
        assert!(nets.0.values().all(|network| network.ip.is_empty()));
    }
}
