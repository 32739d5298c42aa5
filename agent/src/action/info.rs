//! `info` (`agent/action/info.go`): `{"api_version": 1}`, which tells the director what this agent can do.

use crate::action::ActionSpec;
use crate::protocol::API_VERSION;

/// `info`.
pub const ACTION: ActionSpec = ActionSpec::query("info", |_, _| {
    Box::pin(async { Ok(serde_json::json!({ "api_version": API_VERSION })) })
});
