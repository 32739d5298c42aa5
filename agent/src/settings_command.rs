//! `bosh-agent settings`: load the settings the way the agent does at boot and show an operator every
//! step, because a VM that never reaches the message bus is the most common BOSH support case and the
//! Go agent leaves only a debug log behind.
//!
//! It reads `agent.json`, tries each source in order (printing what was tried and why it failed or
//! that it answered), falls back to the cache as the agent would, writes the cache when a source
//! answered, and prints the effective settings with every secret redacted. It succeeds only when a
//! source answered: settings from the cache are shown, but the boot problem is still there.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use settings::source::{Attempt, Mounter, Retry, SourceChain, SourceContext};
use settings::{AgentConfig, Dirs, SettingsService};

/// What `bosh-agent settings` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A source answered.
    SourceAnswered,
    /// No source answered; the cache was usable.
    CacheOnly,
    /// Neither a source nor the cache gave settings.
    NoSettings,
}

/// Loads settings as the agent does, writing the report to `out`.
pub async fn run(
    config_path: &Path,
    dirs: Dirs,
    mounter: Arc<dyn Mounter>,
    retry: Retry,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let config = AgentConfig::from_path(config_path)?;
    let context = SourceContext {
        mounter: mounter.clone(),
        retry,
    };
    let chain = SourceChain::from_options(&config.infrastructure.settings.sources, &context)
        .with_context(|| format!("building settings sources from {}", config_path.display()))?;
    writeln!(
        out,
        "settings sources from {}, in order:",
        config_path.display()
    )?;
    for (index, source) in chain.sources().iter().enumerate() {
        writeln!(out, "  {}. {}", index + 1, source.describe())?;
    }
    let service = SettingsService::new(dirs.clone(), chain).with_tmpfs_mounter(mounter);
    let loaded = service.load().await;
    let (attempts, outcome) = match &loaded {
        Ok(loaded) => {
            let outcome = match loaded.origin {
                settings::service::Origin::Source(_) => Outcome::SourceAnswered,
                settings::service::Origin::Cache(_) => Outcome::CacheOnly,
            };
            (loaded.attempts.clone(), outcome)
        }
        Err(settings::service::Error::NoSettings {
            source: settings::source::Error::AllFailed { attempts },
            ..
        }) => (attempts.clone(), Outcome::NoSettings),
        Err(_) => (Vec::new(), Outcome::NoSettings),
    };
    writeln!(out, "attempts:")?;
    write_attempts(out, &attempts)?;
    match &loaded {
        Ok(loaded) => match &loaded.origin {
            settings::service::Origin::Source(source) => writeln!(
                out,
                "answered by: {source}\nsettings cache written: {}",
                dirs.settings_file(service.settings().env.bosh.agent.settings.tmpfs)
                    .display()
            )?,
            settings::service::Origin::Cache(path) => writeln!(
                out,
                "no source answered; the agent would boot from the cached settings {}",
                path.display()
            )?,
        },
        Err(err) => writeln!(out, "error: {}", settings::source::error_chain(err))?,
    }
    if loaded.is_ok() {
        let settings = service.settings();
        writeln!(out, "effective settings (secrets redacted):")?;
        writeln!(out, "  agent_id:  {}", settings.agent_id)?;
        let mut urls = serde_json::json!(settings.mbus_urls());
        settings::redact::redact(&mut urls);
        writeln!(out, "  mbus:      {urls}")?;
        writeln!(out, "  blobstore: {}", settings.blobstore().provider)?;
        writeln!(out, "  ntp:       {:?}", settings.ntp_servers())?;
        let ssh_key = match service.chain().public_ssh_key().await {
            Ok(Some(key)) => key
                .split_whitespace()
                .take(1)
                .chain(["..."])
                .collect::<Vec<_>>()
                .join(" "),
            Ok(None) => "none".to_owned(),
            Err(err) => format!("error: {}", settings::source::error_chain(&err)),
        };
        writeln!(out, "  ssh key:   {ssh_key}")?;
        let document = settings::redact::redacted_settings(&settings);
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
    }
    Ok(outcome)
}

fn write_attempts(out: &mut dyn Write, attempts: &[Attempt]) -> std::io::Result<()> {
    if attempts.is_empty() {
        return writeln!(out, "  (none)");
    }
    for attempt in attempts {
        match &attempt.error {
            None => writeln!(out, "  {}: answered", attempt.source)?,
            Some(error) => writeln!(out, "  {}: failed: {error}", attempt.source)?,
        }
    }
    Ok(())
}
