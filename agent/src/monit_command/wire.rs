//! What the `monit` command and the agent say to each other over the agent's local socket: one
//! request, one response, each one line of JSON.
//!
//! `{"action":"stop","service":"web"}` → `{"output":""}` or `{"error":"action failed -- ..."}`.
//! The agent renders the text itself (monit's daemon did the same over HTTP), so the command only
//! prints what it gets.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The socket's file name in the base dir's monit directory.
pub const SOCKET_NAME: &str = "agent.sock";

/// The longest request or response line either side reads, in bytes.
pub const MAX_LINE: u64 = 1024 * 1024;

/// What the operator asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `monit summary`.
    Summary,
    /// `monit status [name]`.
    Status,
    /// `monit start <name|all>`.
    Start,
    /// `monit stop <name|all>`.
    Stop,
    /// `monit restart <name|all>`.
    Restart,
    /// `monit monitor <name|all>`.
    Monitor,
    /// `monit unmonitor <name|all>`.
    Unmonitor,
    /// `monit reload`.
    Reload,
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The action.
    pub action: Action,
    /// The service name, `all`, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// One response: text to print, or an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Response {
    /// What to print on standard output.
    #[serde(default)]
    pub output: String,
    /// What went wrong, printed as `monit: <error>` on standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The socket of the agent with base dir `dirs`.
pub fn socket_path(dirs: &settings::Dirs) -> PathBuf {
    dirs.monit_dir().join(SOCKET_NAME)
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 8] = [
        Action::Summary,
        Action::Status,
        Action::Start,
        Action::Stop,
        Action::Restart,
        Action::Monitor,
        Action::Unmonitor,
        Action::Reload,
    ];

    /// The action monit's command line names `word`.
    pub fn parse(word: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.name() == word)
    }

    /// The action's word on monit's command line.
    pub fn name(self) -> &'static str {
        match self {
            Action::Summary => "summary",
            Action::Status => "status",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Monitor => "monitor",
            Action::Unmonitor => "unmonitor",
            Action::Reload => "reload",
        }
    }

    /// Whether the action needs a service name or `all`.
    pub fn needs_service(self) -> bool {
        matches!(
            self,
            Action::Start | Action::Stop | Action::Restart | Action::Monitor | Action::Unmonitor
        )
    }
}

impl Response {
    /// A response that prints `output`.
    pub fn output(output: impl Into<String>) -> Response {
        Response {
            output: output.into(),
            error: None,
        }
    }

    /// A response that fails with `error`.
    pub fn error(error: impl Into<String>) -> Response {
        Response {
            output: String::new(),
            error: Some(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_one_json_line() {
        let request = Request {
            action: Action::Stop,
            service: Some("web".to_owned()),
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"action":"stop","service":"web"}"#
        );
        let summary: Request = serde_json::from_str(r#"{"action":"summary"}"#).unwrap();
        assert_eq!(
            summary,
            Request {
                action: Action::Summary,
                service: None
            }
        );
        assert_eq!(
            serde_json::to_string(&Response::error("no")).unwrap(),
            r#"{"output":"","error":"no"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"action":"quit"}"#).is_err());
        assert_eq!(Action::parse("unmonitor"), Some(Action::Unmonitor));
        assert_eq!(Action::parse("quit"), None);
        assert!(Action::Restart.needs_service() && !Action::Status.needs_service());
    }
}
