//! `sync_dns` (`agent/action/sync_dns.go`): the director broadcasts DNS records to every agent as a
//! blob; when it is newer than `instance/dns/records.json`, the agent downloads it (verified), checks
//! its version, points the names at their addresses (`/etc/hosts` on Linux, `bosh/etc_hosts` on the
//! dummy platform) and keeps the raw blob as `records.json` (0640 root:vcap). Answers `"synced"`.
//!
//! The director waits only 10 s for the broadcast, so this runs at once, beside the instance lane;
//! a lock keeps two syncs from interleaving, as the Go agent's mutex does.

use std::path::Path;
use std::sync::Arc;

use platform::dns::DnsRecords;
use serde_json::Value;
use settings::digest::MultiDigest;

use crate::action::{ActionSpec, Context, Invocation, Result, blocking, error};

/// `sync_dns`.
pub const ACTION: ActionSpec = ActionSpec::query("sync_dns", |context, invocation| {
    Box::pin(run(context, invocation))
});

/// Serialises syncs.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run(context: Arc<Context>, invocation: Invocation) -> Result {
    invocation.args.require(3)?;
    let blob_id: String = invocation.args.get(0)?;
    let digest = MultiDigest::parse(&invocation.args.get::<String>(1)?)?;
    let version: u64 = invocation.args.get(2)?;
    sync(&context, version, Blob::Blobstore { id: blob_id }, &digest).await
}

/// Where the records blob is.
pub(super) enum Blob {
    /// In the agent's blobstore.
    Blobstore {
        /// The blob id.
        id: String,
    },
    /// At a signed URL.
    Signed {
        /// The URL.
        url: String,
        /// Headers to send.
        headers: std::collections::BTreeMap<String, String>,
    },
}

/// Syncs to `version` from `blob` unless the stored records are as new.
pub(super) async fn sync(
    context: &Arc<Context>,
    version: u64,
    blob: Blob,
    digest: &MultiDigest,
) -> Result {
    let _guard = LOCK.lock().await;
    let records_file = context.dirs.instance_dir().join("dns").join("records.json");
    let stored = records_file.clone();
    if blocking(move || Ok(stored_version(&stored)? >= Some(version))).await? {
        return Ok(Value::from("synced"));
    }
    let download = blocking(|| {
        Ok(tempfile::Builder::new()
            .prefix("bosh-agent-dns-")
            .tempdir()?)
    })
    .await?;
    let path = download.path().join("records");
    match blob {
        Blob::Blobstore { id } => context
            .blobstore()
            .await?
            .get(&id, digest, &path)
            .await
            .map_err(|err| {
                error(format!(
                    "getting {id} from blobstore: {}",
                    settings::source::error_chain(&err)
                ))
            })?,
        Blob::Signed { url, headers } => {
            context
                .signed_client()
                .await?
                .get_signed(&url, &headers, digest, &path)
                .await?
        }
    }
    let context = context.clone();
    blocking(move || {
        let contents = std::fs::read(&path)?;
        let records = DnsRecords::parse(&contents)?;
        if records.version != version {
            return Err(error(
                "version from unpacked dns blob does not match version supplied by director",
            ));
        }
        let hostname = context.settings.settings().agent_id;
        context.platform.save_dns_records(&records, &hostname)?;
        // Go's `0640 root:vcap`: jobs running as vcap read the records.
        let owner = context.platform.installed_file_owner()?;
        settings::atomic_file::write_owned(
            &records_file,
            &contents,
            0o640,
            owner.map(|owner| owner.ids()),
        )?;
        drop(download);
        Ok(Value::from("synced"))
    })
    .await
}

/// The version of the stored records, if there are any.
fn stored_version(path: &Path) -> Result<Option<u64>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(DnsRecords::parse(&bytes)?.version)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.into()),
    }
}
