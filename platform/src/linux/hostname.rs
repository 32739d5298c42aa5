//! The VM's hostname is its agent id (`SetupHostname` in `platform/linux_platform.go`,
//! `platform/bootstrap_state.go`): `hostname <id>`, `/etc/hostname`, and `/etc/hosts` from the
//! default template, once. `bosh/agent_state.json` (`{"Linux":{"hosts_configured":true}}`, Go's
//! file) records that it was done, so a later `sync_dns` rewrite of `/etc/hosts` is not undone on
//! restart. We also redo it when `/etc/hostname` no longer names the agent (Go never would).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::dns;
use crate::linux::files;

/// `bosh/agent_state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BootstrapState {
    /// The Linux part.
    #[serde(rename = "Linux")]
    pub linux: LinuxState,
}

/// `Linux` in `bosh/agent_state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinuxState {
    /// Whether the hostname and `/etc/hosts` were set up.
    pub hosts_configured: bool,
}

/// The default `/etc/hosts` for `hostname`.
pub fn etc_hosts(hostname: &str) -> String {
    // No records: the template alone, which cannot fail.
    dns::render_etc_hosts(hostname, &dns::DnsRecords::default()).unwrap_or_default()
}

/// Sets the hostname to `hostname` unless the state file says it was done and `/etc/hostname`
/// still names it.
pub fn setup_hostname(
    runner: &dyn CommandRunner,
    host: &HostPaths,
    state_file: &Path,
    hostname: &str,
) -> Result<()> {
    if hostname.is_empty() || hostname.contains(char::is_whitespace) {
        return Err(Error::Settings(format!(
            "agent_id '{hostname}' cannot be a hostname"
        )));
    }
    let state: BootstrapState = match std::fs::read(state_file) {
        Ok(bytes) => settings::gojson::from_slice(&bytes)
            .map_err(|err| Error::Host(format!("parsing {}: {err}", state_file.display())))?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => BootstrapState::default(),
        Err(source) => return Err(Error::io("reading", state_file, source)),
    };
    let etc_hostname = host.etc("hostname");
    let current = std::fs::read_to_string(&etc_hostname).unwrap_or_default();
    if state.linux.hosts_configured && current.trim() == hostname {
        return Ok(());
    }
    files::run(runner, Cmd::new("hostname").arg(hostname))?;
    files::write_if_changed(&etc_hostname, format!("{hostname}\n").as_bytes(), 0o644)?;
    files::write_if_changed(&host.etc("hosts"), etc_hosts(hostname).as_bytes(), 0o644)?;
    let state = BootstrapState {
        linux: LinuxState {
            hosts_configured: true,
        },
    };
    let bytes = serde_json::to_vec(&state)
        .map_err(|err| Error::Host(format!("encoding the bootstrap state: {err}")))?;
    settings::atomic_file::write(state_file, &bytes, 0o644)
        .map_err(|source| Error::io("writing", state_file, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    const ID: &str = "0f3e8c1a-4b5d-4e6f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn the_hostname_and_hosts_are_set_once() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        let state_file = root.path().join("var/vcap/bosh/agent_state.json");
        let runner = RecordingRunner::new();
        runner.expect(&["hostname", ID], Reply::Ok(String::new()));
        setup_hostname(&runner, &host, &state_file, ID).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/hostname")).unwrap(),
            format!("{ID}\n")
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/hosts")).unwrap(),
            format!(
                "127.0.0.1 {ID} localhost\n\n# The following lines are desirable for IPv6 capable hosts\n\
                 ::1 {ID} localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\n\
                 ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\nff02::3 ip6-allhosts\n"
            )
        );
        assert_eq!(
            std::fs::read_to_string(&state_file).unwrap(),
            r#"{"Linux":{"hosts_configured":true}}"#
        );
        // A restart: nothing is run, and sync_dns's records in /etc/hosts stay.
        std::fs::write(root.path().join("etc/hosts"), "records\n").unwrap();
        setup_hostname(&runner, &host, &state_file, ID).unwrap();
        assert_eq!(runner.recorded().len(), 1);
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/hosts")).unwrap(),
            "records\n"
        );
    }

    #[test]
    fn a_different_hostname_is_set_again_and_a_bad_one_refused() {
        let root = tempfile::tempdir().unwrap();
        let host = HostPaths::with_root(root.path());
        let state_file = root.path().join("agent_state.json");
        std::fs::write(&state_file, r#"{"Linux":{"hosts_configured":true}}"#).unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/hostname"), "stemcell\n").unwrap();
        let runner = RecordingRunner::new();
        runner.expect(&["hostname", "agent-2"], Reply::Ok(String::new()));
        setup_hostname(&runner, &host, &state_file, "agent-2").unwrap();
        assert!(runner.unused().is_empty());
        assert_eq!(
            setup_hostname(&runner, &host, &state_file, "a b")
                .unwrap_err()
                .to_string(),
            "agent_id 'a b' cannot be a hostname"
        );
    }
}
