//! `delete_arp_entries` (`agent/action/delete_arp_entries.go`): forget the neighbour entries of IPs
//! the director is reusing. Fire-and-forget: errors are logged, never answered.

use std::sync::Arc;

use serde::Deserialize;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking};

/// `delete_arp_entries`.
pub const ACTION: ActionSpec = ActionSpec::change("delete_arp_entries", |context, invocation| {
    Box::pin(run(context, invocation))
});

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Args {
    ips: Vec<String>,
}

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(1)?;
    let args: Args = invocation.args.get(0)?;
    let platform = context.platform.clone();
    blocking(move || {
        if let Err(err) = platform.delete_arp_entries(&args.ips) {
            tracing::warn!(error = %settings::source::error_chain(&err), "deleting ARP entries failed");
        }
        Ok(())
    })
    .await?;
    Ok(serde_json::json!({}))
}
