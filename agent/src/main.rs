//! `bosh-agent`: the command line of the Go agent (`main/agent.go`, `app/options.go`):
//! `-P <platform> -C <agent.json> -M <supervisor> -b <base dir> -v`, with `-r` and `-no-alerts`
//! accepted and ignored, plus the `settings` subcommand that shows where settings come from and the
//! `compile` subcommand that compiles release tarballs offline (`main/compile.go`).
//!
//! Started as `monit` (through a link of that name, as the Go agent dispatches on its program name
//! for `bosh-enable-monit-access`), or as `bosh-agent monit <args>`, it is the operator's `monit`
//! command ([`agent::monit_command`]), which asks the running agent over its local socket. Started
//! as `bosh-enable-monit-access` (the stemcell's link), it adds the calling job's rule to the
//! firewall's `monit_access_jobs` chain ([`platform::linux::monit_access`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use settings::Dirs;
use settings::source::Retry;

#[derive(Debug, Parser)]
#[command(
    name = "bosh-agent",
    about = "The BOSH agent",
    disable_version_flag = true
)]
struct Cli {
    /// Platform: ubuntu (or linux) for a real VM, dummy for tests and the director's integration suite.
    #[arg(short = 'P', global = true, default_value = "ubuntu")]
    platform: String,
    /// Path of agent.json.
    #[arg(short = 'C', global = true)]
    config: Option<PathBuf>,
    /// Job supervisor: monit, dummy or dummy-nats.
    #[arg(short = 'M', global = true, default_value = "monit")]
    supervisor: String,
    /// Base directory.
    #[arg(short = 'b', global = true, default_value = settings::dirs::DEFAULT_BASE_DIR)]
    base_dir: PathBuf,
    /// Print the version and exit.
    #[arg(short = 'v')]
    version: bool,
    /// Accepted and ignored, as in the Go agent.
    #[arg(short = 'r', hide = true)]
    ignored_r: bool,
    /// Accepted and ignored, as in the Go agent (written `-no-alerts`).
    #[arg(long = "no-alerts", hide = true)]
    no_alerts: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the settings as the agent does at boot and show every source tried, with secrets redacted.
    Settings {
        /// Attempts per HTTP request of the HTTP, InstanceMetadata and registry sources.
        #[arg(long, default_value_t = 10)]
        attempts: u32,
        /// Milliseconds between those attempts.
        #[arg(long, default_value_t = 1000)]
        retry_delay_ms: u64,
    },
    /// Create BOSH release tarballs with compiled packages from tarballs with source packages,
    /// compiled on this machine under the base dir (`-b`).
    Compile {
        /// The directory to put the compiled release tarballs in (Go-style `-output-directory`
        /// works too).
        #[arg(long, default_value = "/tmp")]
        output_directory: PathBuf,
        /// Release tarballs with source packages.
        tarballs: Vec<PathBuf>,
    },
    /// The operator's monit command (`monit summary`, `monit restart <name|all>`, ...), answered by
    /// the running agent of the base dir in $BOSH_AGENT_BASE_DIR (default /var/vcap).
    #[command(disable_help_flag = true)]
    Monit {
        /// Monit's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let program = args.next();
    let program = program
        .as_deref()
        .and_then(|program| std::path::Path::new(program).file_name());
    if program.is_some_and(|name| name == "monit") {
        let args: Vec<String> = args.map(|arg| arg.to_string_lossy().into_owned()).collect();
        return monit(&args);
    }
    if program.is_some_and(|name| name == "bosh-enable-monit-access") {
        return enable_monit_access();
    }
    // The Go agent's flags are Go-style: `-no-alerts` and `-output-directory` with one dash.
    let args = std::env::args_os().map(|arg| match arg.to_str() {
        Some("-no-alerts") => "--no-alerts".into(),
        Some(flag) if flag.starts_with("-output-directory") => format!("-{flag}").into(),
        _ => arg,
    });
    let cli = Cli::parse_from(args);
    if let Some(Command::Monit { args }) = &cli.command {
        return monit(args);
    }
    if cli.version {
        println!("{} [DEV BUILD]", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    // `settings` reports every failure itself; its log shows only what the report cannot.
    init_logging(if matches!(cli.command, Some(Command::Settings { .. })) {
        "error"
    } else {
        "info"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bosh-agent: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bosh-agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let platform = platform::PlatformName::parse(&cli.platform)?;
    let config_path = || cli.config.clone().context("-C <agent.json> is required");
    match cli.command {
        Some(Command::Settings {
            attempts,
            retry_delay_ms,
        }) => {
            let retry = Retry {
                attempts,
                delay: Duration::from_millis(retry_delay_ms),
            };
            let dirs = Dirs::new(&cli.base_dir);
            let mounter = platform::drive_mounter(platform, &dirs);
            let mut stdout = std::io::stdout().lock();
            let outcome =
                agent::settings_command::run(&config_path()?, dirs, mounter, retry, &mut stdout)
                    .await?;
            Ok(match outcome {
                agent::settings_command::Outcome::SourceAnswered => ExitCode::SUCCESS,
                agent::settings_command::Outcome::CacheOnly => ExitCode::from(2),
                agent::settings_command::Outcome::NoSettings => ExitCode::FAILURE,
            })
        }
        Some(Command::Compile {
            output_directory,
            tarballs,
        }) => compile(&cli.base_dir, output_directory, &tarballs).await,
        // Answered in `main`, before anything else.
        Some(Command::Monit { .. }) => Ok(ExitCode::SUCCESS),
        None => {
            let heartbeat_value = std::env::var(agent::heartbeat::INTERVAL_ENV).ok();
            let heartbeat_interval = agent::heartbeat::interval_from(heartbeat_value.as_deref())
                .unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "keeping the default heartbeat interval");
                    agent::heartbeat::INTERVAL
                });
            let options = agent::app::Options {
                platform,
                config: config_path()?,
                supervisor: cli.supervisor,
                base_dir: cli.base_dir,
                heartbeat_interval,
            };
            match agent::app::run(options, shutdown_signal()).await? {
                // The Go agent exits 1 on a signal ("received signal").
                agent::app::Exit::Shutdown => Ok(ExitCode::FAILURE),
                agent::app::Exit::Restart => {
                    tracing::info!("exiting so the service manager restarts the agent");
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}

/// `bosh-agent compile`: the stemcell is this machine (`bosh/etc/stemcell_version`, `/etc/os-release`).
async fn compile(
    base_dir: &std::path::Path,
    output_dir: PathBuf,
    tarballs: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let dirs = Dirs::new(base_dir);
    let os_release = platform::HostPaths::system().etc("os-release");
    let stemcell_version = dirs.etc_dir().join("stemcell_version");
    let compilation = agent::compile_command::Compilation {
        stemcell: agent::compile_command::Stemcell::read(&stemcell_version, &os_release)?,
        dirs,
        output_dir,
        runner: std::sync::Arc::new(platform::cmd::SystemRunner),
    };
    compilation.compile_all(tarballs).await?;
    Ok(ExitCode::SUCCESS)
}

/// `bosh-enable-monit-access`: the firewall rule that lets the calling job reach monit's port
/// ([`platform::linux::monit_access`]); exit 0 once it is there, 1 on failure.
fn enable_monit_access() -> ExitCode {
    init_logging("info");
    let host = platform::HostPaths::system();
    let added = platform::linux::monit_access::this_caller(&host).and_then(|caller| {
        platform::linux::monit_access::enable_monit_access(&platform::cmd::SystemRunner, &caller)
    });
    match added {
        Ok(access) => {
            tracing::info!(?access, "Successfully added monit access rule");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(
                error = %settings::source::error_chain(&err),
                "Failed to enable monit access"
            );
            ExitCode::FAILURE
        }
    }
}

/// The `monit` command with `args`, against the agent of `$BOSH_AGENT_BASE_DIR` (or `/var/vcap`).
fn monit(args: &[String]) -> ExitCode {
    let base_dir = agent::monit_command::base_dir_from_env();
    let code = agent::monit_command::run(
        args,
        &base_dir,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(code)
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("installing signal handlers failed; the agent stops only when killed");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("received SIGTERM"),
        _ = interrupt.recv() => tracing::info!("received SIGINT"),
    }
}

/// Logs to stderr, like the Go agent (the stemcell's service manager keeps it); `BOSH_AGENT_LOG`
/// overrides `default_level` with targets such as `debug` or `settings=trace,info`. Colour only on a
/// terminal.
fn init_logging(default_level: &str) {
    use std::io::IsTerminal as _;
    use std::str::FromStr as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let targets = std::env::var("BOSH_AGENT_LOG")
        .ok()
        .and_then(|text| tracing_subscriber::filter::Targets::from_str(&text).ok())
        .or_else(|| tracing_subscriber::filter::Targets::from_str(default_level).ok())
        .unwrap_or_default();
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(format)
        .with(targets)
        .init();
}
