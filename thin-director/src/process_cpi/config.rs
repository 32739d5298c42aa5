//! The process CPI's command line and config file.
//!
//! `process-cpi --config <cpi.json>` (also `--config=<file>`, and Go CPIs' `-configPath <file>`)
//! answers one CPI request; `process-cpi supervise <vm dir>` is the VM supervisor `create_vm`
//! starts (see `supervise.rs`), not for people to run.
//!
//! The config file (unknown keys are ignored):
//!
//! ```json
//! {
//!   "base_dir": "/var/vcap/data/process-cpi",
//!   "agent": {
//!     "binary": "/var/vcap/packages/bosh-agent/bin/bosh-agent",
//!     "mbus": "nats://10.0.0.6:4222",
//!     "blobstore": {"provider": "dav", "options": {"endpoint": "https://10.0.0.6:25250"}},
//!     "ntp": ["0.pool.ntp.org"],
//!     "supervisor": "monit",
//!     "env": {"BOSH_AGENT_LOG": "debug"}
//!   },
//!   "stemcell_formats": ["dummy"],
//!   "stop_grace_secs": 10
//! }
//! ```
//!
//! `base_dir` (absolute) holds `stemcells/`, `vms/` and `disks/`. `agent.binary` (absolute) is the
//! `bosh-agent` every VM runs; `agent.mbus` is the NATS URL written into its settings (a CPI job
//! property, never in `create_vm`'s environment); `agent.blobstore` is written into the settings
//! unless `env.bosh.blobstores` is given; `agent.ntp` defaults to none; `agent.supervisor` is the
//! agent's `-M` (default `monit`, which runs real job processes); `agent.env` is added to the
//! agent's environment (the director gives a CPI a scrubbed one). `stemcell_formats` is what `info`
//! reports (default `["dummy"]`), and `stop_grace_secs` how long processes get between SIGTERM and
//! SIGKILL when a VM is deleted or rebooted (default 10).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::process_cpi::error::{Error, Result};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Answer one CPI request with this config file.
    Call {
        /// The config file.
        config: PathBuf,
    },
    /// Supervise the agent of the VM in this directory.
    Supervise {
        /// The VM's directory.
        vm_dir: PathBuf,
    },
}

/// The usage line, for command-line errors.
pub const USAGE: &str = "usage: process-cpi --config <cpi.json> (or -configPath <cpi.json>)";

impl Invocation {
    /// Reads the arguments after the program name.
    pub fn parse(args: &[OsString]) -> std::result::Result<Invocation, String> {
        if args.first().is_some_and(|arg| arg == "supervise") {
            let [_, vm_dir] = args else {
                return Err(match args.get(2) {
                    Some(extra) => {
                        format!("unexpected argument {extra:?} after the VM's directory")
                    }
                    None => "supervise needs the VM's directory".to_owned(),
                });
            };
            return Ok(Invocation::Supervise {
                vm_dir: vm_dir.into(),
            });
        }
        config_path(args, USAGE).map(|config| Invocation::Call { config })
    }
}

/// The config file a CPI's command line names, as the BOSH director and CLI pass it: `--config
/// <file>`, `-configPath <file>` (Go CPIs), or either with `=<file>`; the last one wins. Anything
/// else is an error ending with `usage`. Shared by every CPI in this workspace.
pub fn config_path(args: &[OsString], usage: &str) -> std::result::Result<PathBuf, String> {
    let mut args = args.iter();
    let mut config = None;
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        let (flag, inline) = match text.split_once('=') {
            Some((flag, _)) => (flag.to_owned(), Some(value_after_equals(arg))),
            None => (text.into_owned(), None),
        };
        if !matches!(
            flag.as_str(),
            "--config" | "-config" | "-configPath" | "--configPath"
        ) {
            return Err(format!("unknown argument {arg:?}; {usage}"));
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| format!("{flag} needs a file; {usage}"))?
                .clone(),
        };
        config = Some(PathBuf::from(value));
    }
    config.ok_or_else(|| format!("no config file given; {usage}"))
}

/// The config file.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Where `stemcells/`, `vms/` and `disks/` live.
    pub base_dir: PathBuf,
    /// How VMs' agents run.
    pub agent: AgentConfig,
    /// What `info` reports.
    #[serde(default = "default_stemcell_formats")]
    pub stemcell_formats: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL when a VM's processes are stopped.
    #[serde(default = "default_stop_grace_secs")]
    pub stop_grace_secs: u64,
}

/// The `agent` section.
#[derive(Clone, Deserialize)]
pub struct AgentConfig {
    /// The `bosh-agent` binary.
    pub binary: PathBuf,
    /// The NATS URL agents connect to.
    pub mbus: String,
    /// The blobstore agents use unless `env.bosh.blobstores` is given.
    #[serde(default)]
    pub blobstore: Option<Value>,
    /// NTP servers.
    #[serde(default)]
    pub ntp: Vec<String>,
    /// The agent's `-M`.
    #[serde(default = "default_supervisor")]
    pub supervisor: String,
    /// Variables added to the agent's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The blobstore options carry credentials.
        f.debug_struct("AgentConfig")
            .field("binary", &self.binary)
            .field("mbus", &self.mbus)
            .field("blobstore", &self.blobstore.as_ref().map(|_| "<redacted>"))
            .field("ntp", &self.ntp)
            .field("supervisor", &self.supervisor)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Config {
    /// Parses and checks a config document.
    pub fn parse(text: &[u8]) -> std::result::Result<Config, String> {
        let config: Config = serde_json::from_slice(text).map_err(|err| err.to_string())?;
        if !config.base_dir.is_absolute() {
            return Err(format!(
                "base_dir {} is not an absolute path",
                config.base_dir.display()
            ));
        }
        if !config.agent.binary.is_absolute() {
            return Err(format!(
                "agent.binary {} is not an absolute path",
                config.agent.binary.display()
            ));
        }
        if config.agent.mbus.is_empty() {
            return Err("agent.mbus is empty".to_owned());
        }
        if config.agent.supervisor.is_empty() {
            return Err("agent.supervisor is empty".to_owned());
        }
        Ok(config)
    }

    /// Reads the config file at `path`.
    pub fn from_path(path: &Path) -> Result<Config> {
        let text = std::fs::read(path).map_err(|err| {
            Error::Config(format!("reading the CPI config {}: {err}", path.display()))
        })?;
        Config::parse(&text)
            .map_err(|err| Error::Config(format!("the CPI config {}: {err}", path.display())))
    }

    /// How long processes get between SIGTERM and SIGKILL.
    pub fn stop_grace(&self) -> Duration {
        Duration::from_secs(self.stop_grace_secs)
    }
}

fn default_stemcell_formats() -> Vec<String> {
    vec!["dummy".to_owned()]
}

fn default_stop_grace_secs() -> u64 {
    10
}

fn default_supervisor() -> String {
    "monit".to_owned()
}

/// The bytes after the first `=` of `arg`, kept as they are (a path need not be UTF-8).
fn value_after_equals(arg: &OsStr) -> OsString {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = arg.as_bytes();
    let start = bytes.iter().position(|b| *b == b'=').map_or(0, |i| i + 1);
    OsStr::from_bytes(&bytes[start..]).to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Invocation, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        Invocation::parse(&args)
    }

    #[test]
    fn the_config_flag_is_read_in_every_spelling() {
        let call = Invocation::Call {
            config: "/jobs/cpi/config/cpi.json".into(),
        };
        for args in [
            &["--config", "/jobs/cpi/config/cpi.json"][..],
            &["--config=/jobs/cpi/config/cpi.json"],
            &["-configPath", "/jobs/cpi/config/cpi.json"],
            &["-configPath=/jobs/cpi/config/cpi.json"],
            &["--configPath", "/jobs/cpi/config/cpi.json"],
        ] {
            assert_eq!(parse(args), Ok(call.clone()), "{args:?}");
        }
        assert_eq!(
            parse(&["supervise", "/base/vms/vm-1"]),
            Ok(Invocation::Supervise {
                vm_dir: "/base/vms/vm-1".into()
            })
        );
    }

    #[test]
    fn a_bad_command_line_says_how_to_call() {
        assert_eq!(parse(&[]), Err(format!("no config file given; {USAGE}")));
        assert_eq!(
            parse(&["--config"]),
            Err(format!("--config needs a file; {USAGE}"))
        );
        assert_eq!(
            parse(&["-v"]),
            Err(format!("unknown argument \"-v\"; {USAGE}"))
        );
        assert_eq!(
            parse(&["supervise"]),
            Err("supervise needs the VM's directory".to_owned())
        );
    }

    #[test]
    fn a_config_gets_its_defaults_and_ignores_unknown_keys() {
        let config = Config::parse(
            json!({
                "base_dir": "/cpi",
                "agent": {"binary": "/bin/bosh-agent", "mbus": "nats://127.0.0.1:4222"},
                "future_key": 1,
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(config.base_dir, Path::new("/cpi"));
        assert_eq!(config.stemcell_formats, ["dummy"]);
        assert_eq!(config.stop_grace(), Duration::from_secs(10));
        assert_eq!(config.agent.supervisor, "monit");
        assert_eq!(config.agent.blobstore, None);
        assert!(config.agent.ntp.is_empty() && config.agent.env.is_empty());
    }

    #[test]
    fn an_unusable_config_says_what_is_wrong() {
        let cases = [
            (
                json!({"agent": {"binary": "/a", "mbus": "nats://x"}}),
                "missing field `base_dir` at line 1 column 43",
            ),
            (
                json!({"base_dir": "cpi", "agent": {"binary": "/a", "mbus": "nats://x"}}),
                "base_dir cpi is not an absolute path",
            ),
            (
                json!({"base_dir": "/cpi", "agent": {"binary": "bosh-agent", "mbus": "nats://x"}}),
                "agent.binary bosh-agent is not an absolute path",
            ),
            (
                json!({"base_dir": "/cpi", "agent": {"binary": "/a", "mbus": ""}}),
                "agent.mbus is empty",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(
                Config::parse(config.to_string().as_bytes()).unwrap_err(),
                expected
            );
        }
    }

    #[test]
    fn the_blobstore_credentials_stay_out_of_debug_output() {
        let config = Config::parse(
            json!({
                "base_dir": "/cpi",
                "agent": {
                    "binary": "/a",
                    "mbus": "nats://x",
                    "blobstore": {"provider": "dav", "options": {"password": "s3cret"}},
                },
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
