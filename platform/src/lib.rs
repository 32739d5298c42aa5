//! The OS boundary of the BOSH agent: everything that runs a command, touches a device or reads a host
//! path outside the base dir goes through this crate.
//!
//! * [`cmd`]: the only place that spawns processes ([`cmd::CommandRunner`], the real
//!   [`cmd::SystemRunner`], and a recording fake in [`testing`]);
//! * [`host_paths`]: every host path (`/dev`, `/proc`, `/sys`, `/etc`) under a root that tests move;
//! * [`linux`] and [`dummy`]: the two platforms. The dummy platform is a product feature (the BOSH
//!   director's integration suite runs agents with `-P dummy`): it touches nothing outside the base dir.
//!
//! Today the crate mounts config drives and CD-ROMs for the settings sources
//! ([`settings::source::Mounter`]); disks, networking, users and the rest arrive with the Linux
//! platform issue. **Architecture invariant:** `platform` knows no protocol and no message bus.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod cmd;
pub mod dummy;
pub mod host_paths;
pub mod linux;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;

pub use host_paths::HostPaths;

/// The platforms `-P` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformName {
    /// A real Linux VM (`-P ubuntu`, also `linux`).
    Linux,
    /// The dummy platform (`-P dummy`): state in JSON files under the base dir, no host changes.
    Dummy,
}

/// `-P` named a platform this agent does not have.
#[derive(Debug, thiserror::Error)]
#[error("unknown platform '{0}' (expected ubuntu, linux or dummy)")]
pub struct UnknownPlatform(pub String);

impl PlatformName {
    /// Parses `-P`.
    pub fn parse(name: &str) -> Result<PlatformName, UnknownPlatform> {
        match name {
            "ubuntu" | "linux" => Ok(PlatformName::Linux),
            "dummy" => Ok(PlatformName::Dummy),
            other => Err(UnknownPlatform(other.to_owned())),
        }
    }
}

/// The drive mounter of the named platform, for the settings sources; `dirs` is the agent's base dir.
pub fn drive_mounter(
    name: PlatformName,
    dirs: &settings::Dirs,
) -> Arc<dyn settings::source::Mounter> {
    match name {
        PlatformName::Linux => Arc::new(linux::drive::LinuxDriveMounter::new(
            Arc::new(cmd::SystemRunner),
            HostPaths::system(),
        )),
        PlatformName::Dummy => Arc::new(dummy::drive::DummyDriveMounter::new(dirs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names_follow_the_go_agent() {
        assert_eq!(PlatformName::parse("ubuntu").unwrap(), PlatformName::Linux);
        assert_eq!(PlatformName::parse("dummy").unwrap(), PlatformName::Dummy);
        assert_eq!(
            PlatformName::parse("windows").unwrap_err().to_string(),
            "unknown platform 'windows' (expected ubuntu, linux or dummy)"
        );
    }
}
