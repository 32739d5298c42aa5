//! NTP servers (`SetTimeWithNtpServers` in `platform/linux_platform.go`), for the bootstrap step
//! `ntp`: the settings' `ntp` list goes to `<base>/bosh/etc/ntpserver`, space-separated on one line
//! without a newline (`0644`), where the stemcell's time sync reads it; then the stemcell's
//! `sync-time` script is run, best effort as in Go (its failure is logged, a stemcell without it is
//! fine). No servers leave the file alone. The file is rewritten only when its content changes.

use std::path::Path;

use crate::bootstrap::Result;
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;

/// Writes `servers` into `<etc_dir>/ntpserver` and runs `<bin_dir>/sync-time` if it exists.
pub fn setup(
    runner: &dyn CommandRunner,
    etc_dir: &Path,
    bin_dir: &Path,
    servers: &[String],
) -> Result<()> {
    if servers.is_empty() {
        return Ok(());
    }
    let path = etc_dir.join("ntpserver");
    files::write_if_changed(&path, servers.join(" ").as_bytes(), 0o644)?;
    let script = bin_dir.join("sync-time");
    if !script.exists() {
        tracing::debug!(script = %script.display(), "the stemcell has no sync-time, skipped");
        return Ok(());
    }
    if let Err(err) = files::run(runner, Cmd::new(&script)) {
        tracing::warn!(error = %err, "sync-time failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    #[test]
    fn the_servers_are_written_on_one_line_and_sync_time_failing_is_no_error() {
        let base = tempfile::tempdir().unwrap();
        let (etc, bin) = (base.path().join("bosh/etc"), base.path().join("bosh/bin"));
        let runner = RecordingRunner::new();
        setup(&runner, &etc, &bin, &[]).unwrap();
        assert!(!etc.join("ntpserver").exists(), "no servers, no file");

        let servers = ["0.pool.ntp.org".to_owned(), "10.0.0.1".to_owned()];
        setup(&runner, &etc, &bin, &servers).unwrap();
        let file = etc.join("ntpserver");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "0.pool.ntp.org 10.0.0.1"
        );
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o644);
        assert!(
            runner.recorded().is_empty(),
            "no sync-time on this stemcell"
        );

        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("sync-time"), "#!/bin/sh\n").unwrap();
        let script = bin.join("sync-time").to_str().unwrap().to_owned();
        runner.expect(&[&script], Reply::Fail(1, "no network".into()));
        setup(&runner, &etc, &bin, &servers[..1]).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "0.pool.ntp.org");
        assert_eq!(runner.recorded(), vec![vec![script]]);
    }
}
