//! `thin-director`: deploy a release with any external CPI (the local process CPI by default),
//! over mutual-TLS NATS.
//!
//! ```text
//! thin-director [--state-dir DIR] [--json] [--cpi PATH [--cpi-arg ARG]...]
//!               [--director-config FILE] <command>
//!   deploy MANIFEST --cloud-config FILE     deploy (create, update, converge) a deployment
//!   instances DEPLOYMENT                    its instances, process states and IPs
//!   recreate DEPLOYMENT GROUP/INDEX         replace an instance's VM, keeping its disk
//!   delete-deployment DEPLOYMENT            stop and delete its VMs and disks
//!   logs DEPLOYMENT [GROUP[/INDEX|/ID]] [--dir DIR] [--agent|--system]
//!                                           fetch instances' logs into DIR/<group>.<id>/
//!   cck DEPLOYMENT [--resolve]              scan for (and recreate) missing or broken VMs
//!   run-errand DEPLOYMENT NAME [--keep-alive]  run an errand, print its output
//!   serve [--agent-timeout SECS] [--no-resurrect] [--for SECS]
//!                                           run the health monitor until SIGINT/SIGTERM
//!   upload-stemcell STEMCELL.tgz            give the CPI a stemcell's image
//!   create-release DIR --name N --version V --output FILE
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use thin_director::deploy::director::{Config, CpiChoice, Director};
use thin_director::deploy::report::Reporter;
use thin_director::deploy::{self, cck, errand, inspect, logs};
use thin_director::director_config::DirectorConfig;
use thin_director::health;

#[derive(Debug, Parser)]
#[command(name = "thin-director", about = "The thin BOSH director")]
struct Cli {
    /// Where the director keeps its state, CA, blobs and logs.
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// An external CPI executable (default: the local process CPI next to this binary).
    #[arg(long, global = true)]
    cpi: Option<PathBuf>,
    /// An argument for the external CPI (repeatable).
    #[arg(long = "cpi-arg", global = true)]
    cpi_args: Vec<String>,
    /// A director config (YAML or JSON) naming an existing NATS (`nats`: url, tls.ca,
    /// tls.client_ca, tls.director) and/or an external DAV blobstore (`blobstore`: provider dav,
    /// options.endpoint, user, password, tls.cert.ca) to use instead of its own (an existing
    /// NATS's own configuration says what agents may publish and subscribe to); give it to every
    /// command on the same state.
    #[arg(long, global = true, value_name = "FILE")]
    director_config: Option<PathBuf>,
    /// Another address agents reach the director's NATS and blobstore at, added to their
    /// certificates (repeatable): e.g. the guest address a QEMU CPI forwards to them.
    #[arg(long = "advertise-address", global = true, value_name = "IP")]
    advertised: Vec<std::net::IpAddr>,
    /// Seconds a new VM's agent may take to answer.
    #[arg(long, global = true, default_value_t = 600)]
    agent_wait: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deploy a manifest with a cloud config.
    Deploy {
        /// The deployment manifest.
        manifest: PathBuf,
        /// The cloud config.
        #[arg(long)]
        cloud_config: PathBuf,
    },
    /// List a deployment's instances with their process states.
    Instances {
        /// The deployment.
        deployment: String,
    },
    /// Replace an instance's VM (its disk kept) and converge the deployment.
    Recreate {
        /// The deployment.
        deployment: String,
        /// `<group>/<index>` or `<group>/<id>`.
        instance: String,
    },
    /// Stop and delete a deployment's VMs and disks.
    DeleteDeployment {
        /// The deployment.
        deployment: String,
    },
    /// Fetch instances' logs (`bosh logs`) into DIR/<group>.<id>/.
    Logs {
        /// The deployment.
        deployment: String,
        /// `<group>`, `<group>/<index>` or `<group>/<id>` (default: every instance).
        instance: Option<String>,
        /// Where to unpack them.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The agent's own logs instead of the jobs'.
        #[arg(long, conflicts_with = "system")]
        agent: bool,
        /// The system's logs instead of the jobs'.
        #[arg(long)]
        system: bool,
    },
    /// Scan a deployment for missing VMs, unresponsive agents and unmounted disks (`bosh cck`);
    /// exits non-zero while problems remain.
    Cck {
        /// The deployment.
        deployment: String,
        /// Recreate the instances with problems, then scan again.
        #[arg(long)]
        resolve: bool,
    },
    /// Run an errand (an errand instance group, or a job with `bin/run`); exits non-zero when
    /// it does.
    RunErrand {
        /// The deployment.
        deployment: String,
        /// The errand.
        name: String,
        /// Keep the errand's VMs afterwards.
        #[arg(long)]
        keep_alive: bool,
    },
    /// Run the director (NATS up for agents) with its health monitor until SIGINT or SIGTERM:
    /// report alerts and missing agents, and resurrect instances whose agents went silent. It
    /// holds the state lock: deploy and the other commands fail until it stops.
    Serve {
        /// Seconds an agent may stay silent before it is missing.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        agent_timeout: u64,
        /// Only report missing agents; resurrect nothing.
        #[arg(long)]
        no_resurrect: bool,
        /// Stop after SECS seconds (for tests and scripts).
        #[arg(long = "for", value_name = "SECS")]
        for_secs: Option<u64>,
    },
    /// Upload a stemcell tarball to the CPI (once per operating system and version).
    UploadStemcell {
        /// The stemcell tarball (`stemcell.MF` and `image`).
        tarball: PathBuf,
    },
    /// Make a release tarball from a release directory.
    CreateRelease {
        /// The release directory (`jobs/`, `packages/`).
        dir: PathBuf,
        /// The release name.
        #[arg(long)]
        name: String,
        /// The release version.
        #[arg(long)]
        version: String,
        /// The tarball to write.
        #[arg(long)]
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("thin-director: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("thin-director: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::CreateRelease {
        dir,
        name,
        version,
        output,
    } = &cli.command
    {
        thin_director::release::create::create(dir, name, version, output)?;
        println!("{}", output.display());
        return Ok(());
    }
    let state_dir = match &cli.state_dir {
        Some(dir) => dir.clone(),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".thin-director"),
    };
    let cpi = match &cli.cpi {
        Some(executable) => CpiChoice::External {
            executable: executable.clone(),
            args: cli.cpi_args.iter().map(Into::into).collect(),
        },
        None => {
            let here = std::env::current_exe()?;
            let dir = here.parent().unwrap_or(std::path::Path::new("."));
            CpiChoice::Process {
                executable: dir.join("process-cpi"),
                agent: dir.join("bosh-agent"),
            }
        }
    };
    let mut config = Config::new(state_dir, cpi);
    config.agent_wait = Duration::from_secs(cli.agent_wait);
    config.advertised = cli.advertised.clone();
    if let Some(path) = &cli.director_config {
        config.services = DirectorConfig::load(path)?;
    }
    let director = Director::start(config, Reporter::stdout(cli.json)).await?;
    let outcome = match &cli.command {
        Command::Deploy {
            manifest,
            cloud_config,
        } => deploy::deploy(&director, manifest, cloud_config)
            .await
            .map(drop)
            .map_err(anyhow::Error::from),
        Command::Instances { deployment } => inspect::instances(&director, deployment)
            .await
            .map(|rows| {
                if cli.json {
                    let rows: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|row| {
                            serde_json::json!({
                                "instance": row.instance, "index": row.index, "state": row.state,
                                "az": row.az, "ips": row.ips, "vm_cid": row.vm_cid,
                                "processes": row.processes, "vitals": row.vitals,
                            })
                        })
                        .collect();
                    director
                        .report
                        .line(&serde_json::Value::from(rows).to_string());
                } else {
                    director.report.line(&inspect::table(&rows));
                }
            })
            .map_err(anyhow::Error::from),
        Command::Recreate {
            deployment,
            instance,
        } => deploy::recreate(&director, deployment, instance)
            .await
            .map(drop)
            .map_err(anyhow::Error::from),
        Command::DeleteDeployment { deployment } => {
            inspect::delete_deployment(&director, deployment)
                .await
                .map(drop)
                .map_err(anyhow::Error::from)
        }
        Command::Logs {
            deployment,
            instance,
            dir,
            agent,
            system,
        } => {
            let log_type = match (agent, system) {
                (true, _) => logs::LogType::Agent,
                (_, true) => logs::LogType::System,
                _ => logs::LogType::Job,
            };
            logs::logs(&director, deployment, instance.as_deref(), log_type, dir)
                .await
                .map(|fetched| {
                    for logs in fetched {
                        director.report.item(
                            &format!("{}: {}", logs.instance, logs.dir.display()),
                            &serde_json::json!({
                                "type": "logs", "instance": logs.instance, "dir": logs.dir,
                            }),
                        );
                    }
                })
                .map_err(anyhow::Error::from)
        }
        Command::Cck {
            deployment,
            resolve,
        } => match cck::cck(&director, deployment, *resolve).await {
            Ok(problems) if problems.is_empty() => Ok(()),
            Ok(problems) => Err(anyhow::anyhow!(
                "{} in deployment '{deployment}'",
                cck::count_line(problems.len())
            )),
            Err(err) => Err(err.into()),
        },
        Command::RunErrand {
            deployment,
            name,
            keep_alive,
        } => match errand::run_errand(&director, deployment, name, *keep_alive).await {
            Ok(runs) => {
                errand::print(&director, &runs);
                match errand::failure(name, &runs) {
                    None => Ok(()),
                    Some(failure) => Err(anyhow::anyhow!(failure)),
                }
            }
            Err(err) => Err(err.into()),
        },
        Command::Serve {
            agent_timeout,
            no_resurrect,
            for_secs,
        } => {
            let config = health::Config {
                agent_timeout: Duration::from_secs(*agent_timeout),
                resurrect: !no_resurrect,
                ..health::Config::default()
            };
            health::run(&director, &config, serve_until(*for_secs))
                .await
                .map_err(anyhow::Error::from)
        }
        Command::UploadStemcell { tarball } => deploy::upload_stemcell(&director, tarball)
            .await
            .map(|key| director.report.line(&format!("Stemcell {key} uploaded")))
            .map_err(anyhow::Error::from),
        Command::CreateRelease { .. } => Ok(()),
    };
    director.stop().await;
    outcome
}

/// SIGINT, SIGTERM or, with `--for`, the end of that many seconds.
async fn serve_until(for_secs: Option<u64>) {
    use tokio::signal::unix::{SignalKind, signal};
    let limit = async {
        match for_secs {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!(
            "thin-director: installing signal handlers failed; serve stops only after --for or when killed"
        );
        return limit.await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        () = limit => {}
    }
}

/// Logs to standard error at `warn`, or as `THIN_DIRECTOR_LOG` says (`info`, `thin_director=debug`).
fn init_logging() {
    use std::str::FromStr as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let targets = std::env::var("THIN_DIRECTOR_LOG")
        .ok()
        .and_then(|text| tracing_subscriber::filter::Targets::from_str(&text).ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::WARN)
        });
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(targets)
        .init();
}
