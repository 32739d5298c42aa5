//! The QEMU CPI: a real external CPI (API v2, `reference/director-cpi.md` §1) whose VMs are QEMU
//! processes booted from stemcell images, for VM tests on one machine: `qemu-cpi --config
//! <cpi.json>` (`config.rs`).
//!
//! One call is one process, as for the process CPI it follows
//! (`thin_director::process_cpi`): one JSON request read from standard input to its end, one
//! JSON response on standard output, logs on standard error, exit 0
//! (`src/bin/qemu-cpi.rs`). [`answer`] is all of it but the IO. The request envelope and the
//! argument checks are the process CPI's (`process_cpi::wire`), and so are the error types
//! (`error.rs`).
//!
//! * `config.rs`: the command line and the config file;
//! * `store.rs`: the state under `state_dir` (the layout is in its docs), cids, serials, locks;
//! * `settings.rs`: the agent settings a VM gets, URLs rewritten through the forwards, its MAC;
//! * `iso.rs`: the config drive carrying the settings;
//! * `qemu.rs`: a VM's QEMU command line, a pure function;
//! * `qmp.rs`: a small client of QEMU's QMP monitor;
//! * `relay.rs`: `qemu-cpi relay`, which QEMU runs to carry a guest connection to a host service;
//! * `stemcell.rs`, `vm.rs`, `disk.rs`: the methods, routed by [`QemuCpi::handle`].
//!
//! Every command (`qemu-img`, `genisoimage`, QEMU) runs through `platform::cmd`, so unit tests
//! check argv with the recording fake.
//!
//! To add a method: a function `fn(&QemuCpi, &Request) -> Result<Value>` in the file of its
//! resource, and its name in [`QemuCpi::handle`]'s table.

pub mod config;
pub mod disk;
pub mod error;
pub mod iso;
pub mod qemu;
pub mod qmp;
pub mod relay;
pub mod settings;
pub mod stemcell;
pub mod store;
pub mod vm;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use platform::cmd::{Cmd, CommandRunner, SystemRunner};
use serde_json::{Value, json};
use thin_director::process_cpi::Error as CpiError;
use thin_director::process_cpi::wire::{self, Request};

pub use config::Config;
pub use error::{Error, Result};

use crate::qemu_cpi::store::Store;

/// The stemcell formats `info` reports (the stemcell's `stemcell_formats`).
pub const STEMCELL_FORMATS: &[&str] = &["qemu-qcow2"];

/// The CPI with its config and its command runner.
#[derive(Debug, Clone)]
pub struct QemuCpi {
    /// The config file's contents.
    pub config: Config,
    /// The state under `state_dir`.
    pub store: Store,
    /// Runs `qemu-img`, `genisoimage` and QEMU.
    pub runner: Arc<dyn CommandRunner>,
    /// The `qemu-cpi` executable, which QEMU runs as `relay` for forwarded connections.
    pub relay_exe: PathBuf,
}

impl QemuCpi {
    /// The CPI for `config`, running commands on this machine; `relay_exe` is `qemu-cpi`.
    pub fn new(config: Config, relay_exe: PathBuf) -> QemuCpi {
        QemuCpi::with_runner(config, relay_exe, Arc::new(SystemRunner))
    }

    /// The CPI for `config`, running commands with `runner`.
    pub fn with_runner(
        config: Config,
        relay_exe: PathBuf,
        runner: Arc<dyn CommandRunner>,
    ) -> QemuCpi {
        QemuCpi {
            store: Store::new(&config.state_dir),
            config,
            runner,
            relay_exe,
        }
    }

    /// Runs `request`: the only table from a method name to its function.
    pub fn handle(&self, request: &Request) -> Result<Value> {
        let method = request.method.as_str();
        tracing::debug!(method, "CPI request");
        match method {
            "info" => Ok(json!({
                "stemcell_formats": STEMCELL_FORMATS,
                "api_version": wire::API_VERSION,
            })),
            "create_stemcell" => stemcell::create_stemcell(self, request),
            "delete_stemcell" => stemcell::delete_stemcell(self, request),
            "create_vm" => vm::create_vm(self, request),
            "delete_vm" => vm::delete_vm(self, request),
            "has_vm" => vm::has_vm(self, request),
            "reboot_vm" => vm::reboot_vm(self, request),
            "set_vm_metadata" => vm::set_vm_metadata(self, request),
            "calculate_vm_cloud_properties" => vm::calculate_vm_cloud_properties(self, request),
            "create_disk" => disk::create_disk(self, request),
            "delete_disk" => disk::delete_disk(self, request),
            "has_disk" => disk::has_disk(self, request),
            "attach_disk" => disk::attach_disk(self, request),
            "detach_disk" => disk::detach_disk(self, request),
            "get_disks" => disk::get_disks(self, request),
            "resize_disk" => disk::resize_disk(self, request),
            other => Err(CpiError::NotImplemented(other.to_owned()).into()),
        }
    }

    /// Runs a `qemu-img` command; a failure is reported as `step`.
    pub(crate) fn qemu_img(&self, cmd: Cmd, step: String) -> Result<()> {
        self.runner
            .run(&cmd)
            .map(drop)
            .map_err(Error::command(step))
    }
}

/// Answers the request in `stdin` with the config file at `config_path`, `relay_exe` being
/// `qemu-cpi` itself: the response line. The request is checked before the config is read, so a
/// malformed one gets its Go text whatever the config.
pub fn answer(config_path: &Path, relay_exe: &Path, stdin: &[u8]) -> String {
    let outcome = Request::parse(stdin)
        .map_err(Error::from)
        .and_then(|request| {
            let config = Config::from_path(config_path)?;
            QemuCpi::new(config, relay_exe.to_owned()).handle(&request)
        });
    if let Err(err) = &outcome {
        tracing::error!(kind = err.cloud_type(), error = %err.message(), "CPI call failed");
    }
    error::render_response(&outcome)
}
