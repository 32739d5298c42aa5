//! The dispatcher (`agent/action_dispatcher.go`): from request bytes to a response.
//!
//! [`Dispatcher::accept`] is called in arrival order by the bus. It decodes the request, routes it
//! ([`crate::action::route`]) and, for actions that change the instance, puts the work on the
//! **instance lane** right away, so changes keep their arrival order; it returns a future of the
//! response that the bus awaits on a task of its own. Queries run in that future directly, so they
//! never wait behind the lane. Tasks answer their handle at once; `get_task` reports their end.
//!
//! Better than Go: a request that is not valid JSON but whose `reply_to` can be recovered gets an
//! exception instead of silence; the lane is one ordered worker (Go serialises async tasks on one
//! worker too, but runs synchronous changes in the NATS callback, unordered with tasks).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::action::{self, ActionSpec, Arguments, Context, Invocation, Mode};
use crate::protocol::{MalformedRequest, Request, Response, TaskHandle, texts};
use crate::task::PersistedTask;

/// How many changes and tasks may wait on the lane; the bus waits when it is full.
pub const LANE_CAPACITY: usize = 256;

type LaneJob = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A response to come.
pub type PendingResponse = Pin<Box<dyn Future<Output = Response> + Send>>;

/// An accepted request.
pub struct Accepted {
    /// Where the response goes; `None` when it cannot be answered (no `reply_to`).
    pub reply_to: Option<String>,
    /// The response.
    pub response: PendingResponse,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("reply_to", &self.reply_to)
            .finish()
    }
}

/// Routes requests to actions.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    context: Arc<Context>,
    lane: mpsc::Sender<LaneJob>,
    malformed: Arc<AtomicU64>,
}

impl Dispatcher {
    /// A dispatcher and the instance lane's worker, which the caller owns and runs.
    pub fn new(context: Arc<Context>) -> (Dispatcher, impl Future<Output = ()> + Send) {
        let (lane, mut jobs) = mpsc::channel::<LaneJob>(LANE_CAPACITY);
        let worker = async move {
            while let Some(job) = jobs.recv().await {
                job.await;
            }
        };
        let dispatcher = Dispatcher {
            context,
            lane,
            malformed: Arc::new(AtomicU64::new(0)),
        };
        (dispatcher, worker)
    }

    /// Accepts request bytes, in arrival order.
    pub async fn accept(&self, bytes: &[u8]) -> Accepted {
        let request = match Request::parse(bytes) {
            Ok(request) => request,
            Err(malformed) => return self.malformed(malformed),
        };
        let reply_to = (!request.reply_to.is_empty()).then(|| request.reply_to.clone());
        if let Some(control) = self.context.supervisor.control(&request.method, bytes) {
            return self.supervisor_control(control, reply_to);
        }
        let response = self.route(request, bytes).await;
        Accepted { reply_to, response }
    }

    /// A message for the supervisor itself (`-M dummy-nats`): answered by it, possibly raising an alert.
    fn supervisor_control(
        &self,
        control: jobs::supervisor::Control,
        reply_to: Option<String>,
    ) -> Accepted {
        if let Some(monit) = control.alert {
            let settings = self.context.settings.settings();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs() as i64);
            if let Some(alert) = crate::alert::from_monit(&monit, &settings.networks.ips(), now) {
                let event = crate::protocol::HealthEvent::Alert(alert);
                if self.context.health.try_send(event).is_err() {
                    tracing::warn!("the alert queue is full, dropping an alert");
                }
            }
        }
        match control.reply {
            Some(value) => Accepted {
                reply_to,
                response: ready(Response::Value(value)),
            },
            None => Accepted {
                reply_to: None,
                response: ready(Response::Value(Value::Null)),
            },
        }
    }

    /// Finishes the persisted tasks a previous run left (`update_settings` that restarted the agent),
    /// under their old ids.
    pub async fn resume_persisted_tasks(&self) {
        let tasks = match self.context.tasks.persisted() {
            Ok(tasks) => tasks,
            Err(err) => {
                tracing::error!(error = %settings::source::error_chain(&err), "reading persisted tasks");
                return;
            }
        };
        for task in tasks {
            let Some(resume) = action::route(&task.method).and_then(|action| action.resume) else {
                tracing::warn!(task_id = %task.task_id, method = %task.method, "dropping a persisted task that cannot resume");
                let _ = self.context.tasks.unpersist(&task.task_id);
                continue;
            };
            tracing::info!(task_id = %task.task_id, method = %task.method, "resuming task");
            self.context.tasks.start(&task.task_id, false);
            let context = self.context.clone();
            let job: LaneJob = Box::pin(async move {
                let result = resume(context.clone()).await;
                finish_task(&context, &task.task_id, true, result);
            });
            let _ = self.lane.send(job).await;
        }
    }

    async fn route(&self, request: Request, bytes: &[u8]) -> PendingResponse {
        let Some(action) = action::route(&request.method) else {
            tracing::warn!(method = %request.method, "unknown message");
            return ready(Response::Exception(texts::unknown_message(&request.method)));
        };
        if action.loggable {
            tracing::debug!(method = action.name, payload = %String::from_utf8_lossy(bytes), "request");
        } else {
            tracing::debug!(method = action.name, "request");
        }
        let invocation = Invocation {
            args: Arguments(request.arguments),
            protocol: request.protocol,
            cancel: None,
        };
        let span = tracing::debug_span!("action", method = action.name);
        match (action.mode)(request.protocol) {
            Mode::Query => {
                let context = self.context.clone();
                Box::pin(
                    async move { sync_response(action, (action.run)(context, invocation).await) }
                        .instrument(span),
                )
            }
            Mode::Change => {
                let (sender, receiver) = oneshot::channel();
                let context = self.context.clone();
                let job: LaneJob = Box::pin(
                    async move {
                        let _ = sender.send((action.run)(context, invocation).await);
                    }
                    .instrument(span),
                );
                if self.lane.send(job).await.is_err() {
                    return ready(Response::Exception(texts::action_failed(
                        action.name,
                        "the agent is stopping",
                    )));
                }
                Box::pin(async move {
                    match receiver.await {
                        Ok(result) => sync_response(action, result),
                        Err(_) => Response::Exception(texts::action_failed(
                            action.name,
                            "the agent is stopping",
                        )),
                    }
                })
            }
            Mode::Task => ready(self.start_task(action, invocation, bytes, span).await),
        }
    }

    async fn start_task(
        &self,
        action: &'static ActionSpec,
        mut invocation: Invocation,
        bytes: &[u8],
        span: tracing::Span,
    ) -> Response {
        let id = uuid::Uuid::new_v4().to_string();
        if action.persistent {
            let persisted = PersistedTask {
                task_id: id.clone(),
                method: action.name.to_owned(),
                payload: bytes.to_vec(),
            };
            if let Err(err) = self.context.tasks.persist(persisted) {
                return Response::Exception(texts::action_failed(
                    action.name,
                    &settings::source::error_chain(&err),
                ));
            }
        }
        invocation.cancel = self.context.tasks.start(&id, action.cancellable);
        let context = self.context.clone();
        let task_id = id.clone();
        let job: LaneJob = Box::pin(
            async move {
                let result = (action.run)(context.clone(), invocation).await;
                finish_task(&context, &task_id, action.persistent, result);
            }
            .instrument(span),
        );
        if self.lane.send(job).await.is_err() {
            return Response::Exception(texts::action_failed(action.name, "the agent is stopping"));
        }
        Response::value(TaskHandle::running(id))
    }

    fn malformed(&self, malformed: MalformedRequest) -> Accepted {
        // Outside input can send these in a loop: log the first, then every thousandth.
        let count = self.malformed.fetch_add(1, Ordering::Relaxed);
        if count % 1000 == 0 {
            tracing::warn!(count = count + 1, error = %malformed.message, "malformed request");
        }
        Accepted {
            reply_to: malformed.reply_to,
            response: ready(Response::Exception(malformed.message)),
        }
    }
}

fn finish_task(context: &Context, task_id: &str, persistent: bool, result: action::Result) {
    let result = result.map_err(|err| settings::source::error_chain(err.as_ref()));
    match &result {
        Ok(_) => tracing::info!(task_id, "task done"),
        Err(error) => tracing::error!(task_id, error = %error, "task failed"),
    }
    context.tasks.finish(task_id, result);
    if persistent {
        if let Err(err) = context.tasks.unpersist(task_id) {
            tracing::error!(task_id, error = %settings::source::error_chain(&err), "removing a finished persisted task");
        }
    }
}

fn sync_response(action: &ActionSpec, result: action::Result<Value>) -> Response {
    match result {
        Ok(value) => Response::Value(value),
        Err(err) => {
            let chain = settings::source::error_chain(err.as_ref());
            tracing::error!(method = action.name, error = %chain, "action failed");
            Response::Exception(texts::action_failed(action.name, &chain))
        }
    }
}

fn ready(response: Response) -> PendingResponse {
    Box::pin(std::future::ready(response))
}
