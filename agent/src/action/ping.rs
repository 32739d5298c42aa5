//! `ping` (`agent/action/ping.go`): answers `pong`; the director's liveness check.

use serde_json::Value;

use crate::action::{ActionSpec, Mode, always};

/// `ping`.
pub const ACTION: ActionSpec = ActionSpec {
    name: "ping",
    mode: always(Mode::Query),
    persistent: false,
    cancellable: false,
    loggable: true,
    run: |_, _| Box::pin(async { Ok(Value::from("pong")) }),
    resume: None,
};
