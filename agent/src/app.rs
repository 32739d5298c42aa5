//! The agent at run time (`app/app.go`, `agent/agent.go`): load settings, build the platform, the task
//! service and the dispatcher, resume persisted tasks, connect the bus, serve requests and send
//! heartbeats, until shutdown or a restart request.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use settings::source::{Retry, SourceChain, SourceContext};
use settings::{AgentConfig, Dirs, SettingsService};
use tokio::task::JoinSet;

use crate::action::Context;
use crate::bus;
use crate::dispatch::Dispatcher;
use crate::task::TaskService;

/// The command line's choices.
#[derive(Debug, Clone)]
pub struct Options {
    /// `-P`.
    pub platform: platform::PlatformName,
    /// `-C`.
    pub config: PathBuf,
    /// `-M`.
    pub supervisor: String,
    /// `-b`.
    pub base_dir: PathBuf,
    /// Time between heartbeats ([`crate::heartbeat::INTERVAL`] but in tests).
    pub heartbeat_interval: Duration,
}

/// The message bus the mbus URL's scheme picks.
enum Bus {
    /// `nats://`.
    Nats(bus::nats::NatsBus),
    /// `https://` (`bosh create-env`).
    Https(bus::https::HttpsBus),
}

/// Why the agent stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The caller's shutdown future completed.
    Shutdown,
    /// An action asked for a restart (new mbus or blobstore settings); exit 0 so the service manager
    /// starts the agent again.
    Restart,
}

/// How many health-monitor messages (alerts, the shutdown notice) may wait to be published.
pub const HEALTH_QUEUE: usize = 64;

/// How long the agent waits after a restart request before exiting, so the director learns the task
/// id first (the Go agent's `AgentKiller` waits the same).
pub const RESTART_GRACE: Duration = Duration::from_secs(1);

/// Runs the agent until `shutdown` completes or a restart is requested.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> anyhow::Result<Exit> {
    let config = AgentConfig::from_path(&options.config)?;
    let dirs = Dirs::new(&options.base_dir);
    let source_context = SourceContext {
        mounter: platform::drive_mounter(options.platform, &dirs),
        retry: Retry::default(),
    };
    let chain =
        SourceChain::from_options(&config.infrastructure.settings.sources, &source_context)?;
    let settings = Arc::new(
        SettingsService::new(dirs.clone(), chain)
            .with_tmpfs_mounter(source_context.mounter.clone()),
    );
    let loaded = settings.load().await.context("loading settings")?;
    let current = settings.settings();
    tracing::info!(origin = ?loaded.origin, agent_id = %current.agent_id, "settings loaded");

    let (restart, mut restart_requests) = tokio::sync::mpsc::channel(1);
    let (monit_alerts, mut monit_alert_queue) = tokio::sync::mpsc::channel(HEALTH_QUEUE);
    let (health, mut health_queue) =
        tokio::sync::mpsc::channel::<crate::protocol::HealthEvent>(HEALTH_QUEUE);
    let context = Arc::new(Context {
        dirs: dirs.clone(),
        settings: settings.clone(),
        platform: platform::new_platform_with_options(
            options.platform,
            &dirs,
            &config.platform.linux,
        ),
        supervisor: jobs::supervisor::by_name(
            &options.supervisor,
            &dirs,
            Arc::new(platform::cmd::SystemSpawner::new()),
            platform::HostPaths::system(),
            monit_alerts,
        ),
        tasks: Arc::new(TaskService::new(dirs.tasks_file())),
        restart,
        health,
        runner: Arc::new(platform::cmd::SystemRunner),
    });
    // The supervisor's alerts become health-monitor alerts, titled with the VM's addresses.
    let alert_context = context.clone();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        while let Some(monit) = monit_alert_queue.recv().await {
            let settings = alert_context.settings.settings();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs() as i64);
            if let Some(alert) = crate::alert::from_monit(&monit, &settings.networks.ips(), now) {
                if alert_context
                    .health
                    .try_send(crate::protocol::HealthEvent::Alert(alert))
                    .is_err()
                {
                    tracing::warn!("the health-monitor queue is full, dropping an alert");
                }
            }
        }
    });
    // The bootstrap up to networking comes first: on a VM the bus is unreachable before it. Then
    // the bus connects (or binds); the connection and its TLS handshake proceed in the background
    // while the disks and directories are set up; requests are served only once all is done.
    crate::bootstrap::run(context.clone(), crate::bootstrap::Phase::UntilNetworking).await?;
    let url = current.mbus_url().to_owned();
    let bus = match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("nats") => {
            let certs = current.mbus_certs();
            let tls =
                crate::tls::nats_client_config(&certs.ca, &certs.certificate, &certs.private_key)
                    .map_err(bus::Error::from)?;
            // Only root may reach NATS: the rules are in place before the first connection
            // and rewritten on every disconnection (the hosts resolved afresh).
            let firewall = bus::firewall::NatsFirewall::new(
                context.platform.clone(),
                current.mbus_urls().to_vec(),
            );
            firewall.update().await;
            Bus::Nats(
                bus::nats::NatsBus::connect(
                    current.mbus_urls(),
                    tls,
                    &current.agent_id,
                    Some(firewall.hook()),
                )
                .await?,
            )
        }
        Some("https") => {
            let certs = current.mbus_certs();
            Bus::Https(
                bus::https::HttpsBus::bind(
                    &url,
                    &certs.certificate,
                    &certs.private_key,
                    dirs.blobs_dir(),
                )
                .await?,
            )
        }
        None if url.is_empty() => return Err(bus::Error::NoUrl.into()),
        _ => return Err(bus::Error::Scheme(settings::redact::redact_url(&url)).into()),
    };

    crate::bootstrap::run(context.clone(), crate::bootstrap::Phase::AfterNetworking).await?;
    // The boot-once guard of tmpfs mode: a rebooted VM lost its secrets and must be recreated.
    crate::bootonce::check_and_register(&dirs, current.tmpfs_enabled())?;
    // Job processes outlive the agent: the supervisor adopts them from their pidfiles.
    if let Err(err) = crate::action::start::load_jobs(&context).await {
        tracing::error!(error = %settings::source::error_chain(err.as_ref()), "loading the jobs' monit files");
    }
    // The operator's `monit` command reaches the built-in supervisor through a local socket.
    if context.supervisor.process_supervisor().is_some() {
        let socket_dirs = dirs.clone();
        match tokio::task::spawn_blocking(move || crate::monit_command::server::bind(&socket_dirs))
            .await
        {
            Ok(Ok(socket)) => {
                tasks.spawn(crate::monit_command::server::serve(socket, context.clone()));
            }
            Ok(Err(err)) => {
                tracing::error!(error = %settings::source::error_chain(&err), "the monit command will not reach the agent");
            }
            Err(err) => tracing::error!(error = %err, "binding the monit socket"),
        }
    }
    let (dispatcher, lane) = Dispatcher::new(context.clone());
    tasks.spawn(lane);
    dispatcher.resume_persisted_tasks().await;

    match bus {
        Bus::Nats(nats) => {
            tasks.spawn(crate::heartbeat::run(
                nats.client().clone(),
                nats.connected(),
                context.clone(),
                current.agent_id.clone(),
                options.heartbeat_interval,
            ));
            let publisher = nats.client().clone();
            let agent_id = current.agent_id.clone();
            tasks.spawn(async move {
                while let Some(event) = health_queue.recv().await {
                    let (subject, payload) = event.message(&agent_id);
                    if let Err(err) = publisher.publish(subject, payload.into()).await {
                        tracing::warn!(error = %err, "publishing to the health monitor");
                    }
                }
            });
            let agent_id = current.agent_id.clone();
            tasks.spawn(async move {
                if let Err(err) = nats.serve(&agent_id, dispatcher).await {
                    tracing::error!(error = %settings::source::error_chain(&err), "serving NATS");
                }
            });
        }
        Bus::Https(https) => {
            tasks.spawn(https.serve(dispatcher));
            // `bosh create-env` has no health monitor: these go nowhere, as in Go.
            tasks.spawn(async move { while health_queue.recv().await.is_some() {} });
        }
    }

    tokio::pin!(shutdown);
    let exit = tokio::select! {
        () = &mut shutdown => Exit::Shutdown,
        Some(()) = restart_requests.recv() => {
            tokio::time::sleep(RESTART_GRACE).await;
            Exit::Restart
        }
    };
    tasks.shutdown().await;
    Ok(exit)
}
