//! `info` (`agent/action/info.go`): `{"api_version": 1}`, which tells the director what this agent can do.

use crate::action::{ActionSpec, Mode, always};
use crate::protocol::API_VERSION;

/// `info`.
pub const ACTION: ActionSpec = ActionSpec {
    name: "info",
    mode: always(Mode::Query),
    persistent: false,
    cancellable: false,
    loggable: true,
    run: |_, _| Box::pin(async { Ok(serde_json::json!({ "api_version": API_VERSION })) }),
    resume: None,
};
