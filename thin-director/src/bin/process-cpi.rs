//! `process-cpi`: the process CPI's executable (`thin_director::process_cpi`).
//!
//! `process-cpi --config <cpi.json>` (or Go's `-configPath <cpi.json>`) reads one request from
//! standard input to its end, prints one response on standard output and exits 0, logging to
//! standard error, as every external CPI does. A bad command line prints a CPI error too, and exits
//! 2. `process-cpi supervise <vm dir>` is a VM's supervisor, started by `create_vm`.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use thin_director::process_cpi::{self, Invocation, supervise};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match Invocation::parse(&args) {
        Ok(Invocation::Call { config }) => call(&config),
        Ok(Invocation::Supervise { vm_dir }) => supervise(&vm_dir),
        Err(usage) => {
            eprintln!("process-cpi: {usage}");
            let response =
                process_cpi::wire::render_response(&Err(process_cpi::Error::Config(usage)));
            println!("{response}");
            ExitCode::from(2)
        }
    }
}

/// One CPI call.
fn call(config: &Path) -> ExitCode {
    let mut request = Vec::new();
    let response = match std::io::stdin().read_to_end(&mut request) {
        Ok(_) => {
            // /proc/self/exe: fails only without /proc, where stopping VMs would fail anyway.
            let supervisor_exe =
                std::env::current_exe().unwrap_or_else(|_| PathBuf::from("process-cpi"));
            process_cpi::answer(config, &supervisor_exe, &request)
        }
        Err(err) => process_cpi::wire::render_response(&Err(process_cpi::Error::InvalidJson(
            format!("reading standard input: {err}"),
        ))),
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{response}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Nobody reads the response: nothing more to tell anyone.
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A VM's supervisor, until SIGTERM or SIGINT.
fn supervise(vm_dir: &Path) -> ExitCode {
    if let Err(errno) = supervise::become_session_leader() {
        tracing::warn!(%errno, "cannot make a session of its own, staying in the caller's");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered before the agent starts, so a SIGTERM sent any time after is seen.
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        supervise::run(vm_dir, shutdown)
            .await
            .map_err(|err| std::io::Error::other(err.message()))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "the VM supervisor stopped");
            ExitCode::FAILURE
        }
    }
}
