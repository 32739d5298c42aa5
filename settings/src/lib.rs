//! The BOSH agent's settings: what a VM is told at boot and where it finds that out.
//!
//! * [`model`]: the settings document and the rules derived from it (mbus, blobstore and NTP
//!   precedence, DHCP, default networks, swap size, persistent disks with hints);
//! * [`agent_config`]: `agent.json`, the stemcell's configuration of the agent;
//! * [`digest`]: multi-digests (`sha1`, `sha256`, `sha512`; the strongest wins);
//! * [`source`]: the settings sources (File, HTTP metadata, InstanceMetadata, ConfigDrive, CDROM, and
//!   the registry of CPI API v1) and the chain that pins the first that answers;
//! * [`service`]: loading with the cache fallback and the director's update settings;
//! * [`dirs`]: every path under the base dir; [`gojson`]: decoding with Go's rules;
//!   [`atomic_file`]: replacing state files safely; [`redact`]: hiding secrets.
//!
//! **Architecture invariant:** this crate depends on no other workspace crate, never spawns a process
//! and never touches a device; drives are mounted through [`source::Mounter`], which the platform
//! implements.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod agent_config;
pub mod atomic_file;
pub mod digest;
pub mod dirs;
pub mod gojson;
pub mod model;
pub mod redact;
pub mod service;
pub mod source;

pub use agent_config::AgentConfig;
pub use dirs::Dirs;
pub use model::Settings;
pub use service::SettingsService;
