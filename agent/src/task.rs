//! The task service (`agent/task/*`): async actions run as tasks whose state `get_task` reports.
//!
//! A task is `running`, then done with a value or failed with an error text. Unlike the Go agent, which
//! keeps every finished task in memory forever, finished tasks are kept for [`KEEP_FINISHED_FOR`] and
//! at most [`KEEP_FINISHED_COUNT`] of them, so a long-lived agent's memory stays bounded.
//!
//! Persistent tasks (`update_settings`) are written to `bosh/tasks.json` before they run and removed
//! when they finish, in the Go agent's format
//! `{"<id>": {"TaskID": "...", "Method": "...", "Payload": "<base64 of the raw request>"}}`, so a task
//! interrupted by the agent's own restart is resumed under the same id.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

/// How long a finished task stays queryable.
pub const KEEP_FINISHED_FOR: Duration = Duration::from_secs(3600);

/// How many finished tasks stay queryable at most.
pub const KEEP_FINISHED_COUNT: usize = 1000;

/// The state of a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    /// Still running.
    Running,
    /// Finished with this value.
    Done(Value),
    /// Failed with this error chain.
    Failed(String),
}

/// A persisted task, as in `bosh/tasks.json` (Go field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedTask {
    /// The task id.
    #[serde(rename = "TaskID")]
    pub task_id: String,
    /// The action.
    #[serde(rename = "Method")]
    pub method: String,
    /// The raw request, base64 in the file.
    #[serde(rename = "Payload", with = "base64_bytes")]
    pub payload: Vec<u8>,
}

/// Asks a running task to stop; the action watches its [`Cancellation`].
pub type Cancellation = watch::Receiver<bool>;

/// Why a task could not be cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelError {
    /// No such task.
    NotFound,
    /// The action cannot be cancelled.
    NotSupported,
}

/// Why `bosh/tasks.json` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the file failed.
    #[error("{action} {}", .path.display())]
    Io {
        /// `reading` or `writing`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a task list.
    #[error("parsing {}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Running and recently finished tasks.
#[derive(Debug)]
pub struct TaskService {
    tasks_file: PathBuf,
    inner: Mutex<Tasks>,
    persisted: Mutex<()>,
}

#[derive(Debug, Default)]
struct Tasks {
    by_id: HashMap<String, Entry>,
    finished: VecDeque<(String, Instant)>,
}

#[derive(Debug)]
struct Entry {
    state: TaskState,
    cancel: Option<watch::Sender<bool>>,
}

impl TaskService {
    /// A service persisting to `tasks_file` (`bosh/tasks.json`).
    pub fn new(tasks_file: PathBuf) -> TaskService {
        TaskService {
            tasks_file,
            inner: Mutex::new(Tasks::default()),
            persisted: Mutex::new(()),
        }
    }

    /// Registers a running task under `id`. When `cancellable`, returns the receiver the action watches.
    pub fn start(&self, id: &str, cancellable: bool) -> Option<Cancellation> {
        let (sender, receiver) = if cancellable {
            let (sender, receiver) = watch::channel(false);
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        self.lock().by_id.insert(
            id.to_owned(),
            Entry {
                state: TaskState::Running,
                cancel: sender,
            },
        );
        receiver
    }

    /// Records the end of a task, and forgets old finished tasks.
    pub fn finish(&self, id: &str, result: Result<Value, String>) {
        let mut tasks = self.lock();
        if let Some(entry) = tasks.by_id.get_mut(id) {
            entry.state = match result {
                Ok(value) => TaskState::Done(value),
                Err(error) => TaskState::Failed(error),
            };
            entry.cancel = None;
        }
        let now = Instant::now();
        tasks.finished.push_back((id.to_owned(), now));
        while tasks.finished.len() > KEEP_FINISHED_COUNT
            || tasks
                .finished
                .front()
                .is_some_and(|(_, at)| now.duration_since(*at) > KEEP_FINISHED_FOR)
        {
            if let Some((old, _)) = tasks.finished.pop_front() {
                if tasks
                    .by_id
                    .get(&old)
                    .is_some_and(|e| e.state != TaskState::Running)
                {
                    tasks.by_id.remove(&old);
                }
            }
        }
    }

    /// The state of a task, if it is known.
    pub fn state(&self, id: &str) -> Option<TaskState> {
        self.lock().by_id.get(id).map(|entry| entry.state.clone())
    }

    /// How many tasks are known (running and kept finished).
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether no task is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks a task to stop.
    pub fn cancel(&self, id: &str) -> Result<(), CancelError> {
        let tasks = self.lock();
        let entry = tasks.by_id.get(id).ok_or(CancelError::NotFound)?;
        match &entry.cancel {
            Some(sender) => {
                let _ = sender.send(true);
                Ok(())
            }
            None => Err(CancelError::NotSupported),
        }
    }

    /// Adds a task to `bosh/tasks.json` before it runs.
    pub fn persist(&self, task: PersistedTask) -> Result<(), Error> {
        let _guard = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.read_persisted()?;
        all.insert(task.task_id.clone(), task);
        self.write_persisted(&all)
    }

    /// Removes a finished task from `bosh/tasks.json`.
    pub fn unpersist(&self, id: &str) -> Result<(), Error> {
        let _guard = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.read_persisted()?;
        if all.remove(id).is_some() {
            self.write_persisted(&all)?;
        }
        Ok(())
    }

    /// The tasks a previous run of the agent left unfinished.
    pub fn persisted(&self) -> Result<Vec<PersistedTask>, Error> {
        let _guard = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        Ok(self.read_persisted()?.into_values().collect())
    }

    fn read_persisted(&self) -> Result<BTreeMap<String, PersistedTask>, Error> {
        match std::fs::read(&self.tasks_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::Parse {
                path: self.tasks_file.clone(),
                source,
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(Error::Io {
                action: "reading",
                path: self.tasks_file.clone(),
                source,
            }),
        }
    }

    fn write_persisted(&self, all: &BTreeMap<String, PersistedTask>) -> Result<(), Error> {
        let io_error = |source| Error::Io {
            action: "writing",
            path: self.tasks_file.clone(),
            source,
        };
        let json = serde_json::to_vec(all).map_err(|err| io_error(std::io::Error::other(err)))?;
        settings::atomic_file::write(&self.tasks_file, &json, 0o600).map_err(io_error)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn tasks_run_then_finish_with_a_value_or_an_error() {
        let service = TaskService::new(PathBuf::from("/nonexistent/tasks.json"));
        service.start("a", false);
        assert_eq!(service.state("a"), Some(TaskState::Running));
        service.finish("a", Ok(Value::from("applied")));
        assert_eq!(
            service.state("a"),
            Some(TaskState::Done(Value::from("applied")))
        );
        service.start("b", false);
        service.finish("b", Err("boom".into()));
        assert_eq!(service.state("b"), Some(TaskState::Failed("boom".into())));
        assert_eq!(service.state("c"), None);
    }

    #[test]
    fn finished_tasks_are_bounded_in_count() {
        let service = TaskService::new(PathBuf::from("/nonexistent/tasks.json"));
        for index in 0..KEEP_FINISHED_COUNT + 10 {
            let id = index.to_string();
            service.start(&id, false);
            service.finish(&id, Ok(Value::Null));
        }
        assert_eq!(service.len(), KEEP_FINISHED_COUNT);
        assert_eq!(service.state("0"), None);
        assert!(
            service
                .state(&(KEEP_FINISHED_COUNT + 9).to_string())
                .is_some()
        );
    }

    #[test]
    fn only_cancellable_tasks_cancel() {
        let service = TaskService::new(PathBuf::from("/nonexistent/tasks.json"));
        service.start("plain", false);
        assert_eq!(service.cancel("plain"), Err(CancelError::NotSupported));
        let receiver = service.start("drain", true).unwrap();
        service.cancel("drain").unwrap();
        assert!(*receiver.borrow());
        assert_eq!(service.cancel("nope"), Err(CancelError::NotFound));
    }

    #[test]
    fn persisted_tasks_use_the_go_format_and_survive_a_new_service() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bosh/tasks.json");
        let service = TaskService::new(file.clone());
        let task = PersistedTask {
            task_id: "t-1".into(),
            method: "update_settings".into(),
            payload: br#"{"method":"update_settings"}"#.to_vec(),
        };
        service.persist(task.clone()).unwrap();
        let json: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(json["t-1"]["TaskID"], "t-1");
        assert_eq!(json["t-1"]["Method"], "update_settings");
        assert_eq!(
            json["t-1"]["Payload"],
            base64::engine::general_purpose::STANDARD.encode(&task.payload)
        );
        assert_eq!(
            TaskService::new(file.clone()).persisted().unwrap(),
            vec![task]
        );
        service.unpersist("t-1").unwrap();
        assert!(TaskService::new(file).persisted().unwrap().is_empty());
    }
}
