//! The actions: one module per BOSH method (`agent/action/*.go`), named as on the wire, and the only
//! table from method name to action ([`route`]).
//!
//! Each action declares how it runs ([`Mode`]): a **query** reads state and runs at once, concurrently
//! with anything else, so `ping`, `get_state`, `get_task` and `info` never wait behind a slow action;
//! a **change** alters the instance and runs in arrival order on the instance lane, answering when it
//! is done; a **task** answers a task handle at once and runs on the same lane, `get_task` reporting
//! its result. Methods the table does not know (including the retired `configure_networks`,
//! `prepare_network_change`, `prepare_configure_networks` and `release_apply_spec`) get
//! `unknown message <method>`.
//!
//! How to add an action: write `<method>.rs` with `pub const ACTION: ActionSpec = ActionSpec::task(..)`
//! (or `query`, `change`), add it to [`route`], and test it through a real agent in `tests/nats_bus.rs`.

mod add_dynamic_disk;
mod add_persistent_disk;
mod apply;
mod bundle_logs;
mod cancel_task;
mod compile_package;
mod compile_package_with_signed_url;
mod delete_arp_entries;
mod drain;
mod fetch_logs;
mod fetch_logs_with_signed_url;
mod get_state;
mod get_task;
mod info;
mod list_disk;
mod migrate_disk;
mod mount_disk;
mod ping;
mod prepare;
mod remove_dynamic_disk;
mod remove_file;
mod remove_persistent_disk;
mod run_errand;
mod run_script;
mod shutdown;
mod ssh;
pub mod start;
mod stop;
mod sync_dns;
mod sync_dns_with_signed_url;
mod unmount_disk;
mod update_settings;
mod upload_blob;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::protocol::texts;
use crate::task::{Cancellation, TaskService};

/// A boxed future of an action.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An action's failure; its chain becomes the `Action Failed` text.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What an action returns.
pub type Result<T = Value> = std::result::Result<T, Error>;

/// How an action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads state: runs at once, concurrently.
    Query,
    /// Changes the instance: runs in arrival order, answers when done.
    Change,
    /// Runs in arrival order as a task; answers a task handle at once.
    Task,
}

/// One action.
#[derive(Debug)]
pub struct ActionSpec {
    /// The wire name.
    pub name: &'static str,
    /// How it runs, given the request's protocol version.
    pub mode: fn(protocol: u64) -> Mode,
    /// Written to `bosh/tasks.json` and resumed after a restart.
    pub persistent: bool,
    /// `cancel_task` can stop it.
    pub cancellable: bool,
    /// Its payload may be logged (not `upload_blob`, whose payload is a rendered secret).
    pub loggable: bool,
    /// Runs it.
    pub run: Runner,
    /// Finishes a persisted task after a restart.
    pub resume: Option<fn(Arc<Context>) -> BoxFuture<Result>>,
}

/// What an action is called with.
#[derive(Debug)]
pub struct Invocation {
    /// The positional arguments.
    pub args: Arguments,
    /// The request's protocol version.
    pub protocol: u64,
    /// Set when a cancellable task is asked to stop.
    pub cancel: Option<Cancellation>,
}

/// Everything actions work with.
#[derive(Debug)]
pub struct Context {
    /// Paths under the base dir.
    pub dirs: settings::Dirs,
    /// The settings.
    pub settings: Arc<settings::SettingsService>,
    /// The OS.
    pub platform: Arc<dyn platform::Platform>,
    /// The job supervisor.
    pub supervisor: Box<dyn jobs::supervisor::JobSupervisor>,
    /// The tasks.
    pub tasks: Arc<TaskService>,
    /// Asks the agent to exit 0 so its service manager restarts it.
    pub restart: tokio::sync::mpsc::Sender<()>,
    /// Messages for the health monitor (published on NATS; dropped on HTTPS, as in Go).
    pub health: tokio::sync::mpsc::Sender<crate::protocol::HealthEvent>,
    /// Runs commands (packaging scripts, external blobstore commands).
    pub runner: Arc<dyn platform::cmd::CommandRunner>,
}

impl Context {
    /// The settings' networks with the DHCP ones' addresses filled in from the default route (Go's
    /// `GetSettings`; [`apply::resolve_dhcp_settings`]).
    pub async fn resolved_networks(self: &Arc<Self>) -> Result<settings::model::Networks> {
        let mut networks = self.settings.settings().networks;
        let platform = self.platform.clone();
        blocking(move || {
            apply::resolve_dhcp_settings(&mut networks, |ipv6| platform.default_network(ipv6));
            Ok(networks)
        })
        .await
    }

    /// The blobstore of the current settings (update settings, then `env.bosh.blobstores`, then
    /// `blobstore`), wrapped with retries and the local blob directories.
    pub async fn blobstore(self: &Arc<Self>) -> Result<Arc<dyn jobs::blobstore::Blobstore>> {
        let context = self.clone();
        blocking(move || {
            let settings = context.settings.settings();
            let blobstore = jobs::blobstore::from_settings(
                settings.blobstore(),
                &context.dirs,
                context.runner.clone(),
            )?;
            Ok(Arc::from(blobstore))
        })
        .await
    }

    /// The client for signed URLs, trusting the blobstore's CA (reading the system's store blocks).
    pub async fn signed_client(self: &Arc<Self>) -> Result<jobs::blobstore::SignedClient> {
        let context = self.clone();
        blocking(move || {
            Ok(jobs::blobstore::SignedClient::from_settings(
                context.settings.settings().blobstore(),
            )?)
        })
        .await
    }

    /// The jobs' lifecycle scripts (`run_script`, drain, errands).
    pub fn job_scripts(&self) -> jobs::script::JobScripts {
        let runner = jobs::script::runner::CommandScriptRunner::new(self.runner.clone());
        jobs::script::JobScripts::new(self.dirs.clone(), Arc::new(runner))
    }

    /// The package and job installer `prepare`, `apply` and compilation use.
    pub async fn installer(self: &Arc<Self>) -> Result<jobs::install::Installer> {
        let blobstore = self.blobstore().await?;
        let signed = self.signed_client().await?;
        let parallel = self.settings.settings().env.bosh.parallel();
        let installer = jobs::install::Installer::new(self.dirs.clone(), blobstore)
            .with_signed_client(signed)
            .with_parallel(parallel);
        Ok(match self.platform.installed_file_owner()? {
            Some(owner) => installer.with_owner(Arc::new(owner)),
            None => installer,
        })
    }
}

/// The action for `method`, if there is one.
pub fn route(method: &str) -> Option<&'static ActionSpec> {
    Some(match method {
        "add_dynamic_disk" => &add_dynamic_disk::ACTION,
        "add_persistent_disk" => &add_persistent_disk::ACTION,
        "apply" => &apply::ACTION,
        "bundle_logs" => &bundle_logs::ACTION,
        "cancel_task" => &cancel_task::ACTION,
        "compile_package" => &compile_package::ACTION,
        "compile_package_with_signed_url" => &compile_package_with_signed_url::ACTION,
        "delete_arp_entries" => &delete_arp_entries::ACTION,
        "drain" => &drain::ACTION,
        "fetch_logs" => &fetch_logs::ACTION,
        "fetch_logs_with_signed_url" => &fetch_logs_with_signed_url::ACTION,
        "get_state" => &get_state::ACTION,
        "get_task" => &get_task::ACTION,
        "info" => &info::ACTION,
        "list_disk" => &list_disk::ACTION,
        "migrate_disk" => &migrate_disk::ACTION,
        "mount_disk" => &mount_disk::ACTION,
        "ping" => &ping::ACTION,
        "prepare" => &prepare::ACTION,
        "remove_dynamic_disk" => &remove_dynamic_disk::ACTION,
        "remove_file" => &remove_file::ACTION,
        "remove_persistent_disk" => &remove_persistent_disk::ACTION,
        "run_errand" => &run_errand::ACTION,
        "run_script" => &run_script::ACTION,
        "shutdown" => &shutdown::ACTION,
        "ssh" => &ssh::ACTION,
        "start" => &start::ACTION,
        "stop" => &stop::ACTION,
        "sync_dns" => &sync_dns::ACTION,
        "sync_dns_with_signed_url" => &sync_dns_with_signed_url::ACTION,
        "unmount_disk" => &unmount_disk::ACTION,
        "update_settings" => &update_settings::ACTION,
        "upload_blob" => &upload_blob::ACTION,
        _ => return None,
    })
}

/// A future-returning runner of an action.
pub type Runner = fn(Arc<Context>, Invocation) -> BoxFuture<Result>;

impl ActionSpec {
    /// A query: runs at once, concurrently.
    pub const fn query(name: &'static str, run: Runner) -> ActionSpec {
        ActionSpec::new(name, Mode::Query, run)
    }

    /// A change: runs in arrival order, answers when done.
    pub const fn change(name: &'static str, run: Runner) -> ActionSpec {
        ActionSpec::new(name, Mode::Change, run)
    }

    /// A task: runs in arrival order, answers a task handle at once.
    pub const fn task(name: &'static str, run: Runner) -> ActionSpec {
        ActionSpec::new(name, Mode::Task, run)
    }

    /// Persisted in `bosh/tasks.json` and finished by `resume` after a restart.
    pub const fn persistent(mut self, resume: fn(Arc<Context>) -> BoxFuture<Result>) -> ActionSpec {
        self.persistent = true;
        self.resume = Some(resume);
        self
    }

    /// `cancel_task` can stop it.
    pub const fn cancellable(mut self) -> ActionSpec {
        self.cancellable = true;
        self
    }

    /// Its payload is never logged.
    pub const fn not_logged(mut self) -> ActionSpec {
        self.loggable = false;
        self
    }

    /// Its mode depends on the protocol version.
    pub const fn mode_by_protocol(mut self, mode: fn(u64) -> Mode) -> ActionSpec {
        self.mode = mode;
        self
    }

    const fn new(name: &'static str, mode: Mode, run: Runner) -> ActionSpec {
        ActionSpec {
            name,
            mode: always(mode),
            persistent: false,
            cancellable: false,
            loggable: true,
            run,
            resume: None,
        }
    }
}

/// Positional arguments, decoded with Go's rules into each action's types.
#[derive(Debug, Clone, Default)]
pub struct Arguments(pub Vec<Value>);

/// An argument that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("argument {index}")]
pub struct BadArgument {
    /// Its position, from 1.
    pub index: usize,
    /// Why.
    #[source]
    pub source: settings::gojson::Error,
}

/// Too few arguments (the Go agent's text).
#[derive(Debug, thiserror::Error)]
#[error("{}", texts::not_enough_arguments(*.expected, *.got))]
pub struct NotEnoughArguments {
    /// How many the action needs.
    pub expected: usize,
    /// How many came.
    pub got: usize,
}

impl Arguments {
    /// Fails unless at least `count` arguments came.
    pub fn require(&self, count: usize) -> Result<()> {
        if self.0.len() < count {
            return Err(Box::new(NotEnoughArguments {
                expected: count,
                got: self.0.len(),
            }));
        }
        Ok(())
    }

    /// Decodes argument `index` (from 0), which must be there.
    pub fn get<T: DeserializeOwned>(&self, index: usize) -> Result<T> {
        let value = self.0.get(index).cloned().unwrap_or(Value::Null);
        settings::gojson::from_value(value).map_err(|source| -> Error {
            Box::new(BadArgument {
                index: index + 1,
                source,
            })
        })
    }

    /// Decodes argument `index` when it is there.
    pub fn optional<T: DeserializeOwned>(&self, index: usize) -> Result<Option<T>> {
        match self.0.get(index) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.get(index).map(Some),
        }
    }
}

/// The disk a `(cid, hint)` pair of arguments names, with the settings reloaded first (the CPI may
/// have rewritten them when attaching it): `add_persistent_disk` and `add_dynamic_disk`.
pub async fn disk_from_hint(
    context: &Context,
    args: &Arguments,
) -> Result<settings::model::DiskSettings> {
    args.require(2)?;
    let disk_cid: String = args.get(0)?;
    let hint: settings::model::DiskSpec = args.get(1)?;
    context.settings.load().await?;
    Ok(context
        .settings
        .settings()
        .persistent_disk_settings_from_hint(&disk_cid, &hint))
}

/// A cancel token for blocking script work that follows the task's cancellation.
pub fn cancel_token(
    cancel: Option<crate::task::Cancellation>,
) -> jobs::script::cancel::CancelToken {
    let token = jobs::script::cancel::CancelToken::new();
    if let Some(mut cancel) = cancel {
        let forward = token.clone();
        // Ends with the task: the sender is dropped when the task finishes.
        tokio::spawn(async move {
            while cancel.changed().await.is_ok() {
                if *cancel.borrow() {
                    forward.cancel();
                    return;
                }
            }
        });
    }
    token
}

/// Runs blocking work (platform calls, file IO) off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| -> Error { Box::new(err) })?
}

/// The mode of an action that is always one thing.
const fn always(mode: Mode) -> fn(u64) -> Mode {
    match mode {
        Mode::Query => |_| Mode::Query,
        Mode::Change => |_| Mode::Change,
        Mode::Task => |_| Mode::Task,
    }
}

/// An action error from a message.
pub(crate) fn error(message: impl Into<String>) -> Error {
    message.into().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_and_unknown_methods_have_no_action() {
        for method in [
            "configure_networks",
            "prepare_network_change",
            "prepare_configure_networks",
            "release_apply_spec",
            "nope",
        ] {
            assert!(route(method).is_none(), "{method}");
        }
    }

    #[test]
    fn every_routed_action_carries_its_wire_name() {
        for method in [
            "ping",
            "get_task",
            "update_settings",
            "mount_disk",
            "list_disk",
            "upload_blob",
        ] {
            assert_eq!(route(method).map(|a| a.name), Some(method));
        }
    }

    #[test]
    fn missing_arguments_get_the_go_text() {
        let err = Arguments(vec![]).require(1).unwrap_err();
        assert_eq!(err.to_string(), "Not enough arguments, expected 1, got 0");
        let err = Arguments(vec![Value::from(5)])
            .get::<String>(0)
            .unwrap_err();
        assert_eq!(err.to_string(), "argument 1");
        assert!(settings::source::error_chain(err.as_ref()).contains("invalid type: integer `5`"));
    }
}
