//! The QEMU CPI's command line and config file.
//!
//! `qemu-cpi --config <cpi.json>` (also `--config=<file>`, and Go CPIs' `-configPath <file>`)
//! answers one CPI request. The config file (unknown keys are ignored; all but `state_dir`
//! optional, with these defaults):
//!
//! ```json
//! {
//!   "state_dir": "/var/vcap/data/qemu-cpi",
//!   "qemu": "qemu-system-x86_64",
//!   "qemu_img": "qemu-img",
//!   "accel": "auto",
//!   "memory_mb": 1024,
//!   "cpus": 2,
//!   "forwards": [{"guest": "10.0.2.100:4222", "host": "127.0.0.1:4222"}],
//!   "test_shell": false,
//!   "detach_timeout_secs": 30,
//!   "agent": {"mbus": "nats://127.0.0.1:4222", "ntp": [], "blobstore": null}
//! }
//! ```
//!
//! `state_dir` (absolute) holds the state (`store.rs`). `accel` is `auto` (KVM when `/dev/kvm`
//! opens for reading and writing, else TCG), `tcg` or `kvm`. On the machines we test on
//! `/dev/kvm` opens for root, yet KVM boots no Linux guest (`-cpu host` fails on MSR 0x10a, the
//! default CPU hangs before the first console line): their configs say `tcg`. `forwards` are QEMU `guestfwd`s from
//! a guest address in the user network `10.0.2.0/24` to a host loopback address; URLs in the
//! settings that name a forward's `host` are rewritten to its `guest` (`settings.rs`). `test_shell`
//! (tests only) boots VMs on the stemcell's `test-layer.qcow2` with a shell on a virtio console.
//! `detach_timeout_secs` is how long `detach_disk` waits for the guest to release a disk.
//! `agent` is what a CPI job's properties give a Go CPI: the `mbus` URL, `ntp` servers and the
//! `blobstore` written into every VM's settings (`env.bosh.blobstores` wins over `blobstore`).

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thin_director::process_cpi::Error as CpiError;

use crate::qemu_cpi::error::Result;

/// The usage line, for command-line errors.
pub const USAGE: &str = "usage: qemu-cpi --config <cpi.json> (or -configPath <cpi.json>)";

/// The KVM device `auto` tries.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// The guest side of QEMU's user network (`-netdev user,net=`).
pub const GUEST_NET: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 0);

/// Its prefix length.
pub const GUEST_NET_PREFIX: u8 = 24;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Answer one CPI request with this config file.
    Call {
        /// The config file.
        config: PathBuf,
    },
    /// Carry one guest connection to this host service (`relay.rs`; QEMU runs it).
    Relay {
        /// The service.
        host: SocketAddr,
    },
}

/// Reads the arguments after the program name.
pub fn parse_args(args: &[OsString]) -> std::result::Result<Invocation, String> {
    if args.first().is_some_and(|arg| arg == "relay") {
        let [_, host] = args else {
            return Err("relay needs exactly one <host:port>".to_owned());
        };
        let host = host
            .to_string_lossy()
            .parse()
            .map_err(|err| format!("relay {host:?}: {err}"))?;
        return Ok(Invocation::Relay { host });
    }
    thin_director::process_cpi::config::config_path(args, USAGE)
        .map(|config| Invocation::Call { config })
}

/// The config file.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Where `stemcells/`, `vms/` and `disks/` live.
    pub state_dir: PathBuf,
    /// The QEMU system emulator.
    #[serde(default = "default_qemu")]
    pub qemu: PathBuf,
    /// `qemu-img`.
    #[serde(default = "default_qemu_img")]
    pub qemu_img: PathBuf,
    /// How guests run.
    #[serde(default)]
    pub accel: Accel,
    /// Guest memory in MiB, unless the VM's cloud properties say `ram`.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Guest CPUs, unless the VM's cloud properties say `cpu`.
    #[serde(default = "default_cpus")]
    pub cpus: u64,
    /// Guest addresses forwarded to host loopback services.
    #[serde(default)]
    pub forwards: Vec<Forward>,
    /// Boot on the test layer with a shell console (tests only).
    #[serde(default)]
    pub test_shell: bool,
    /// Seconds `detach_disk` waits for the guest to release a disk.
    #[serde(default = "default_detach_timeout_secs")]
    pub detach_timeout_secs: u64,
    /// What VMs' agents are told.
    #[serde(default)]
    pub agent: AgentConfig,
}

/// `accel`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM when it can be opened, else TCG.
    #[default]
    Auto,
    /// Software emulation.
    Tcg,
    /// Hardware virtualisation.
    Kvm,
}

/// One `guestfwd`: connections from the guest to `guest` go to `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The address the guest connects to, in `10.0.2.0/24`.
    pub guest: SocketAddrV4,
    /// The host loopback address it reaches.
    pub host: SocketAddrV4,
}

/// The `agent` section.
#[derive(Clone, Default, Deserialize)]
pub struct AgentConfig {
    /// The NATS URL agents connect to (rewritten through the forwards).
    #[serde(default)]
    pub mbus: String,
    /// NTP servers.
    #[serde(default)]
    pub ntp: Vec<String>,
    /// The blobstore agents use unless `env.bosh.blobstores` is given.
    #[serde(default)]
    pub blobstore: Option<Value>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The blobstore options carry credentials.
        f.debug_struct("AgentConfig")
            .field("mbus", &self.mbus)
            .field("ntp", &self.ntp)
            .field("blobstore", &self.blobstore.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Accel {
    /// The accelerator QEMU gets: `auto` resolved with `kvm_opens`.
    pub fn resolve(self, kvm_opens: impl FnOnce() -> bool) -> Accel {
        match self {
            Accel::Auto if kvm_opens() => Accel::Kvm,
            Accel::Auto => Accel::Tcg,
            other => other,
        }
    }

    /// Its name in `-accel`.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Whether `/dev/kvm` opens for reading and writing.
pub fn kvm_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(KVM_DEVICE)
        .is_ok()
}

impl Config {
    /// Parses and checks a config document; errors name the field.
    pub fn parse(text: &[u8]) -> std::result::Result<Config, String> {
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        let config: Config =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
                let path = err.path().to_string();
                if path == "." {
                    err.inner().to_string()
                } else {
                    format!("{path}: {}", err.inner())
                }
            })?;
        if !config.state_dir.is_absolute() {
            return Err(format!(
                "state_dir: {} is not an absolute path",
                config.state_dir.display()
            ));
        }
        if config.state_dir.to_string_lossy().contains(',') {
            // QEMU's option syntax splits on commas: the VM's file paths could not be given.
            return Err(format!(
                "state_dir: {} contains a comma, which QEMU options cannot hold",
                config.state_dir.display()
            ));
        }
        if config.memory_mb == 0 {
            return Err("memory_mb: must be at least 1".to_owned());
        }
        if config.cpus == 0 {
            return Err("cpus: must be at least 1".to_owned());
        }
        for (index, forward) in config.forwards.iter().enumerate() {
            forward
                .check()
                .map_err(|problem| format!("forwards[{index}].{problem}"))?;
        }
        Ok(config)
    }

    /// Reads the config file at `path`.
    pub fn from_path(path: &Path) -> Result<Config> {
        let text = std::fs::read(path).map_err(|err| {
            CpiError::Config(format!("reading the CPI config {}: {err}", path.display()))
        })?;
        Ok(Config::parse(&text)
            .map_err(|err| CpiError::Config(format!("the CPI config {}: {err}", path.display())))?)
    }
}

impl Forward {
    /// Checks the guest address is in the user network and not one of QEMU's own, and the host
    /// address is loopback; the problem starts with the field's name.
    fn check(&self) -> std::result::Result<(), String> {
        let guest = *self.guest.ip();
        let mask = u32::MAX << (32 - GUEST_NET_PREFIX);
        if u32::from(guest) & mask != u32::from(GUEST_NET) {
            return Err(format!(
                "guest: {} is not in {GUEST_NET}/{GUEST_NET_PREFIX}",
                self.guest
            ));
        }
        // 10.0.2.2 is QEMU's gateway (the host), 10.0.2.3 its DNS; .0 and .255 are no hosts.
        if matches!(guest.octets()[3], 0 | 2 | 3 | 255) {
            return Err(format!(
                "guest: {} is reserved by QEMU's user network",
                self.guest
            ));
        }
        if !self.host.ip().is_loopback() {
            return Err(format!(
                "host: {} is not a loopback address (VMs reach only this host's loopback)",
                self.host
            ));
        }
        Ok(())
    }
}

fn default_qemu() -> PathBuf {
    PathBuf::from("qemu-system-x86_64")
}

fn default_qemu_img() -> PathBuf {
    PathBuf::from("qemu-img")
}

fn default_memory_mb() -> u64 {
    1024
}

fn default_cpus() -> u64 {
    2
}

fn default_detach_timeout_secs() -> u64 {
    30
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_args_of(args: &[&str]) -> std::result::Result<PathBuf, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        match parse_args(&args)? {
            Invocation::Call { config } => Ok(config),
            other => panic!("{other:?}"),
        }
    }

    fn parse(config: Value) -> std::result::Result<Config, String> {
        Config::parse(config.to_string().as_bytes())
    }

    #[test]
    fn the_config_flag_is_read_in_every_spelling() {
        for args in [
            &["--config", "/cpi.json"][..],
            &["--config=/cpi.json"],
            &["-configPath", "/cpi.json"],
            &["-configPath=/cpi.json"],
        ] {
            assert_eq!(
                parse_args_of(args),
                Ok(PathBuf::from("/cpi.json")),
                "{args:?}"
            );
        }
        assert_eq!(
            parse_args_of(&[]),
            Err(format!("no config file given; {USAGE}"))
        );
        assert_eq!(
            parse_args_of(&["--config"]),
            Err(format!("--config needs a file; {USAGE}"))
        );
        assert_eq!(
            parse_args_of(&["-v"]),
            Err(format!("unknown argument \"-v\"; {USAGE}"))
        );
    }

    #[test]
    fn relay_takes_one_address() {
        let args = |args: &[&str]| parse_args(&args.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(
            args(&["relay", "127.0.0.1:4222"]),
            Ok(Invocation::Relay {
                host: "127.0.0.1:4222".parse().unwrap()
            })
        );
        assert_eq!(
            args(&["relay"]),
            Err("relay needs exactly one <host:port>".to_owned())
        );
        assert_eq!(
            args(&["relay", "nats"]),
            Err("relay \"nats\": invalid socket address syntax".to_owned())
        );
    }

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let config = parse(json!({"state_dir": "/cpi", "future_key": 1})).unwrap();
        assert_eq!(config.state_dir, Path::new("/cpi"));
        assert_eq!(config.qemu, Path::new("qemu-system-x86_64"));
        assert_eq!(config.qemu_img, Path::new("qemu-img"));
        assert_eq!(config.accel, Accel::Auto);
        assert_eq!((config.memory_mb, config.cpus), (1024, 2));
        assert!(config.forwards.is_empty());
        assert!(!config.test_shell);
        assert_eq!(config.detach_timeout_secs, 30);
        assert_eq!(config.agent.mbus, "");
    }

    #[test]
    fn a_full_config_is_read() {
        let config = parse(json!({
            "state_dir": "/cpi",
            "qemu": "/usr/bin/qemu-system-x86_64",
            "accel": "tcg",
            "memory_mb": 512,
            "cpus": 1,
            "forwards": [{"guest": "10.0.2.100:4222", "host": "127.0.0.1:4222"}],
            "test_shell": true,
            "agent": {"mbus": "nats://127.0.0.1:4222", "blobstore": {"options": {"password": "s3cret"}}},
        }))
        .unwrap();
        assert_eq!(config.accel, Accel::Tcg);
        assert_eq!(
            config.forwards,
            [Forward {
                guest: "10.0.2.100:4222".parse().unwrap(),
                host: "127.0.0.1:4222".parse().unwrap(),
            }]
        );
        assert!(config.test_shell);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "missing field `state_dir` at line 1 column 2"),
            (
                json!({"state_dir": "cpi"}),
                "state_dir: cpi is not an absolute path",
            ),
            (
                json!({"state_dir": "/a,b"}),
                "state_dir: /a,b contains a comma, which QEMU options cannot hold",
            ),
            (
                json!({"state_dir": "/cpi", "memory_mb": "1G"}),
                "memory_mb: invalid type: string \"1G\", expected u64 at line 1 column 17",
            ),
            (
                json!({"state_dir": "/cpi", "accel": "hvf"}),
                "accel: unknown variant `hvf`, expected one of `auto`, `tcg`, `kvm` at line 1 column 14",
            ),
            (
                json!({"state_dir": "/cpi", "cpus": 0}),
                "cpus: must be at least 1",
            ),
            (
                json!({"state_dir": "/cpi", "forwards": [{"guest": "10.0.2.100", "host": "127.0.0.1:1"}]}),
                "forwards[0].guest: invalid IPv4 socket address syntax at line 1 column 34",
            ),
            (
                json!({"state_dir": "/cpi", "forwards": [{"guest": "10.0.3.1:1", "host": "127.0.0.1:1"}]}),
                "forwards[0].guest: 10.0.3.1:1 is not in 10.0.2.0/24",
            ),
            (
                json!({"state_dir": "/cpi", "forwards": [{"guest": "10.0.2.2:1", "host": "127.0.0.1:1"}]}),
                "forwards[0].guest: 10.0.2.2:1 is reserved by QEMU's user network",
            ),
            (
                json!({"state_dir": "/cpi", "forwards": [{"guest": "10.0.2.100:1", "host": "192.168.1.1:1"}]}),
                "forwards[0].host: 192.168.1.1:1 is not a loopback address (VMs reach only this host's loopback)",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(parse(config.clone()).unwrap_err(), expected, "{config}");
        }
    }

    #[test]
    fn auto_is_kvm_only_when_it_opens() {
        assert_eq!(Accel::Auto.resolve(|| true), Accel::Kvm);
        assert_eq!(Accel::Auto.resolve(|| false), Accel::Tcg);
        assert_eq!(Accel::Tcg.resolve(|| true), Accel::Tcg);
        assert_eq!(Accel::Kvm.resolve(|| false), Accel::Kvm);
    }
}
