//! The process CPI: a real external CPI (API v2, `reference/director-cpi.md` §1) whose VMs are
//! local `bosh-agent` processes on the dummy platform, so a whole deployment runs on one machine.
//! It plays the part of the BOSH director's dummy CPI (`bosh-director/lib/cloud/dummy.rb`), as a
//! separate executable any director can call: `process-cpi --config <cpi.json>` (`config.rs`).
//!
//! One call is one process: it reads one JSON request from standard input to its end, writes one
//! JSON response (`{"result","error","log"}`) to standard output, logs to standard error and
//! exits 0 (`src/bin/process-cpi.rs`). [`answer`] is all of it but the IO.
//!
//! * `wire.rs`: the request and its arguments, the response; `error.rs`: the CPI error types;
//! * `config.rs`: the command line and the config file;
//! * `store.rs`: the state under `base_dir` (the layout is in its docs), atomic writes, the lock;
//! * `settings.rs`: the agent settings and `agent.json` a VM boots with, and the disk hint;
//! * `stemcell.rs`, `vm.rs`, `disk.rs`: the methods, routed by [`ProcessCpi::handle`];
//! * `processes.rs`: finding and stopping a VM's processes (its agent and the jobs the agent
//!   started in sessions of their own);
//! * `supervise.rs`: `process-cpi supervise <vm dir>`, which keeps a VM's agent running.
//!
//! The director calls `create_vm` for many VMs at once, each call its own process: state is only
//! files, each written whole (temporary file and rename), and read-modify-writes of shared records
//! (a VM's settings, a disk's record) happen under an flock(2) of `<base_dir>/lock`.
//!
//! To add a method: a function `fn(&ProcessCpi, &Request) -> Result<Value>` in the file of its
//! resource, and its name in [`ProcessCpi::handle`]'s table.

pub mod config;
pub mod disk;
pub mod error;
pub mod processes;
pub mod settings;
pub mod stemcell;
pub mod store;
pub mod supervise;
pub mod vm;
pub mod wire;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub use config::{Config, Invocation};
pub use error::{Error, Result};
pub use wire::Request;

use crate::process_cpi::processes::Caller;
use crate::process_cpi::store::Store;

/// The CPI with its config and its view of the host.
#[derive(Debug, Clone)]
pub struct ProcessCpi {
    /// The config file's contents.
    pub config: Config,
    /// The state under `base_dir`.
    pub store: Store,
    /// Where the process table is (`/proc`).
    pub proc_root: PathBuf,
    /// This process, whose processes it may stop.
    pub caller: Caller,
    /// The `process-cpi` executable, run as `process-cpi supervise <vm dir>` for each VM.
    pub supervisor_exe: PathBuf,
}

impl ProcessCpi {
    /// The CPI for `config`, on this host; VMs are supervised by `supervisor_exe`.
    pub fn new(config: Config, supervisor_exe: PathBuf) -> ProcessCpi {
        ProcessCpi {
            store: Store::new(&config.base_dir),
            config,
            proc_root: PathBuf::from(processes::PROC_ROOT),
            caller: Caller::current(),
            supervisor_exe,
        }
    }

    /// Runs `request`: the only table from a method name to its function.
    pub fn handle(&self, request: &Request) -> Result<Value> {
        let method = request.method.as_str();
        tracing::debug!(method, "CPI request");
        match method {
            "info" => Ok(json!({
                "stemcell_formats": self.config.stemcell_formats,
                "api_version": wire::API_VERSION,
            })),
            "create_stemcell" => stemcell::create_stemcell(self, request),
            "delete_stemcell" => stemcell::delete_stemcell(self, request),
            "create_vm" => vm::create_vm(self, request),
            "delete_vm" => vm::delete_vm(self, request),
            "has_vm" => vm::has_vm(self, request),
            "reboot_vm" => vm::reboot_vm(self, request),
            "set_vm_metadata" => vm::set_vm_metadata(self, request),
            "create_disk" => disk::create_disk(self, request),
            "delete_disk" => disk::delete_disk(self, request),
            "has_disk" => disk::has_disk(self, request),
            "attach_disk" => disk::attach_disk(self, request),
            "detach_disk" => disk::detach_disk(self, request),
            "get_disks" => disk::get_disks(self, request),
            "set_disk_metadata" => disk::set_disk_metadata(self, request),
            other => Err(Error::NotImplemented(other.to_owned())),
        }
    }
}

/// Answers the request in `stdin` with the config file at `config_path`: the response line.
/// The request is checked before the config is read, so a malformed one gets its Go text
/// whatever the config.
pub fn answer(config_path: &Path, supervisor_exe: &Path, stdin: &[u8]) -> String {
    let outcome = Request::parse(stdin).and_then(|request| {
        let config = Config::from_path(config_path)?;
        ProcessCpi::new(config, supervisor_exe.to_owned()).handle(&request)
    });
    if let Err(err) = &outcome {
        tracing::error!(kind = err.cloud_type(), error = %err.message(), "CPI call failed");
    }
    wire::render_response(&outcome)
}
