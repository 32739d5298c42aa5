//! `ping` (`agent/action/ping.go`): answers `pong`; the director's liveness check.

use serde_json::Value;

use crate::action::ActionSpec;

/// `ping`.
pub const ACTION: ActionSpec =
    ActionSpec::query("ping", |_, _| Box::pin(async { Ok(Value::from("pong")) }));
