//! `qemu-cpi`: the QEMU CPI's executable (`vm_tests::qemu_cpi`).
//!
//! `qemu-cpi --config <cpi.json>` (or Go's `-configPath <cpi.json>`) reads one request from
//! standard input to its end, prints one response on standard output and exits 0, logging to
//! standard error, as every external CPI does. A bad command line prints a CPI error too, and
//! exits 2. `qemu-cpi relay <host:port>` is what QEMU runs for each guest connection to a
//! forwarded address (`qemu_cpi::relay`), not for people to run.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use thin_director::process_cpi::Error as CpiError;
use vm_tests::qemu_cpi::config::{self, Invocation};
use vm_tests::qemu_cpi::{self, error, relay};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let config = match config::parse_args(&args) {
        Ok(Invocation::Call { config }) => config,
        // No logging: the relay's standard error is the guest's connection.
        Ok(Invocation::Relay { host }) => {
            return match relay::run(host) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Err(usage) => {
            eprintln!("qemu-cpi: {usage}");
            println!(
                "{}",
                error::render_response(&Err(CpiError::Config(usage).into()))
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
    let mut request = Vec::new();
    let response = match std::io::stdin().read_to_end(&mut request) {
        Ok(_) => {
            // /proc/self/exe: without it QEMU could not run the relay either.
            let relay_exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("qemu-cpi"));
            qemu_cpi::answer(&config, &relay_exe, &request)
        }
        Err(err) => error::render_response(&Err(CpiError::InvalidJson(format!(
            "reading standard input: {err}"
        ))
        .into())),
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
