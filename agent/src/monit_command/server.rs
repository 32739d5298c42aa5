//! The agent's side of the `monit` command: a Unix socket under the base dir's monit directory,
//! served while the built-in supervisor (`-M monit`) runs, in place of monit's HTTP interface on
//! `127.0.0.1:2822` (which the stemcell fenced with a firewall and a password file).
//!
//! Only root and the agent's own user may use it: the directory is made `0700`, the socket `0600`,
//! and each connection's peer credentials (`SO_PEERCRED`) are checked before its request is read.
//! A connection carries one request line and gets one response line; reads and writes time out,
//! lines are bounded, and at most [`MAX_CONNECTIONS`] are served at once.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jobs::process::Target;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::action::Context;
use crate::monit_command::render;
use crate::monit_command::wire::{self, Action, Request, Response};

/// How many connections are served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 8;

/// How long a client may take to send its request, or to take the response.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Preparing the directory or the socket failed.
    #[error("preparing {}", .path.display())]
    Prepare {
        /// The directory or socket.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Something other than a socket is in the way.
    #[error("{} exists and is not a socket", .0.display())]
    NotASocket(PathBuf),
}

/// A bound socket, ready to serve.
#[derive(Debug)]
pub struct MonitSocket {
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    /// The agent's user, who may connect besides root.
    owner_uid: u32,
}

/// Binds the socket of `dirs` (`<base>/monit/agent.sock`): the monit directory is created and made
/// `0700`, a stale socket of an earlier agent is removed, the new one is made `0600`. Blocking.
pub fn bind(dirs: &settings::Dirs) -> Result<MonitSocket, Error> {
    let dir = dirs.monit_dir();
    let prepare = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Prepare { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(prepare(&dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(prepare(&dir))?;
    let path = wire::socket_path(dirs);
    match std::fs::symlink_metadata(&path) {
        Ok(metadata) if metadata.file_type().is_socket() => {
            std::fs::remove_file(&path).map_err(prepare(&path))?;
        }
        Ok(_) => return Err(Error::NotASocket(path)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(prepare(&path)(err)),
    }
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(prepare(&path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(prepare(&path))?;
    listener.set_nonblocking(true).map_err(prepare(&path))?;
    // The socket belongs to the agent's effective user.
    let owner_uid = std::fs::metadata(&path).map_err(prepare(&path))?.uid();
    Ok(MonitSocket {
        listener,
        path,
        owner_uid,
    })
}

/// Serves `socket` until the task is dropped or aborted, answering from `context`'s supervisor.
pub async fn serve(socket: MonitSocket, context: Arc<Context>) {
    let listener = match UnixListener::from_std(socket.listener) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(path = %socket.path.display(), error = %err, "serving the monit socket");
            return;
        }
    };
    tracing::info!(path = %socket.path.display(), "serving the monit command");
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        // Forget connections that are done.
        while connections.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "accepting a monit command connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(credentials) if credentials.uid() == 0 || credentials.uid() == socket.owner_uid => {}
            Ok(credentials) => {
                tracing::warn!(
                    uid = credentials.uid(),
                    "refused a monit command from another user"
                );
                continue;
            }
            Err(err) => {
                tracing::warn!(error = %err, "reading a monit command's credentials");
                continue;
            }
        }
        let context = Arc::clone(&context);
        connections.spawn(async move {
            connection(stream, &context).await;
            drop(permit);
        });
    }
}

/// Reads one request from `stream`, answers it, and closes.
async fn connection(stream: UnixStream, context: &Arc<Context>) {
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(reader.take(wire::MAX_LINE));
    let response = match tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                tracing::debug!(action = ?request.action, service = ?request.service, "monit command");
                answer(context, request).await
            }
            Err(err) => Response::error(format!("invalid request: {err}")),
        },
        Ok(Err(err)) => Response::error(format!("reading the request: {err}")),
        Err(_) => return,
    };
    let mut bytes = serde_json::to_vec(&response).unwrap_or_default();
    bytes.push(b'\n');
    let written = tokio::time::timeout(IO_TIMEOUT, async {
        writer.write_all(&bytes).await?;
        writer.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::debug!("a monit command went away before its answer");
    }
}

/// Does what `request` asks of the supervisor.
async fn answer(context: &Arc<Context>, request: Request) -> Response {
    let Some(supervisor) = context.supervisor.process_supervisor() else {
        return Response::error("the agent's job supervisor is not monit");
    };
    let target = request.service.as_deref().map(Target::parse);
    if request.action.needs_service() && target.is_none() {
        return Response::error(format!(
            "please specify the configured service name or 'all' after {}",
            request.action.name()
        ));
    }
    let done = match (request.action, &target) {
        (Action::Summary, _) | (Action::Status, _) => {
            let reporting = Arc::clone(context);
            let report = tokio::task::spawn_blocking(move || {
                reporting
                    .supervisor
                    .process_supervisor()
                    .map(jobs::process::Supervisor::report)
            })
            .await;
            let Ok(Some(report)) = report else {
                return Response::error("reading the services' status failed");
            };
            return if request.action == Action::Summary {
                Response::output(render::summary(&report))
            } else {
                // `status all` is everything, as monit's `status` (which takes no name) is.
                let only = request.service.as_deref().filter(|name| *name != "all");
                match render::status(&report, only) {
                    Some(text) => Response::output(text),
                    None => Response::error(format!(
                        "service '{}' not found",
                        request.service.unwrap_or_default()
                    )),
                }
            };
        }
        (Action::Reload, _) => {
            return match crate::action::start::load_jobs(context).await {
                Ok(()) => Response::output("Reinitializing monit daemon\n"),
                Err(err) => Response::error(format!(
                    "action failed -- {}",
                    settings::source::error_chain(err.as_ref())
                )),
            };
        }
        (Action::Start, Some(target)) => supervisor.start(target),
        (Action::Stop, Some(target)) => supervisor.stop(target).await,
        (Action::Restart, Some(target)) => supervisor.restart(target),
        (Action::Monitor, Some(target)) => supervisor.monitor(target),
        (Action::Unmonitor, Some(target)) => supervisor.unmonitor(target),
        (_, None) => return Response::error("a service name is needed"),
    };
    match done {
        Ok(()) => Response::default(),
        // Monit's daemon answers 404 "There is no service by that name"; its command prints it so.
        Err(jobs::process::Error::UnknownService(_)) => {
            Response::error("action failed -- There is no service by that name")
        }
        Err(err) => Response::error(format!("action failed -- {err}")),
    }
}
