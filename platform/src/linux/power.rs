//! Power and neighbour-cache operations of the Linux platform (`Shutdown` and
//! `DeleteARPEntryWithIP` in `platform/linux_platform.go`): `shutdown -P 0` powers the VM off (the
//! command returns once systemd has queued the power-off, so the agent can still answer), and
//! `ip neigh flush to <ip>` forgets one address's neighbour entries. The addresses are checked
//! first ([`crate::net::parse_ips`]): a bad one flushes nothing.

use crate::cmd::{Cmd, CommandRunner};
use crate::{net, power};

/// `ip neigh flush to <ip>` for each of `ips`.
pub fn delete_arp_entries(runner: &dyn CommandRunner, ips: &[String]) -> net::Result<()> {
    let ips = net::parse_ips(ips)?;
    for ip in ips {
        let cmd = Cmd::new("ip").args(["neigh", "flush", "to", &ip.to_string()]);
        runner
            .run(&cmd)
            .map_err(|source| net::Error::DeleteArpEntry {
                ip,
                source: Box::new(source),
            })?;
    }
    Ok(())
}

/// `shutdown -P 0`.
pub fn shutdown(runner: &dyn CommandRunner) -> power::Result<()> {
    runner
        .run(&Cmd::new("shutdown").args(["-P", "0"]))
        .map(drop)
        .map_err(|source| power::Error::Shutdown(Box::new(source)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    #[test]
    fn each_address_is_flushed_and_a_bad_one_flushes_nothing() {
        let runner = RecordingRunner::new();
        runner.expect(
            &["ip", "neigh", "flush", "to", "10.0.0.7"],
            Reply::Ok(String::new()),
        );
        runner.expect(
            &["ip", "neigh", "flush", "to", "fd00::7"],
            Reply::Ok(String::new()),
        );
        delete_arp_entries(&runner, &["10.0.0.7".into(), "fd00::7".into()]).unwrap();
        assert_eq!(runner.recorded().len(), 2);
        assert!(runner.unused().is_empty());

        let err = delete_arp_entries(&runner, &["10.0.0.8".into(), "-all".into()]).unwrap_err();
        assert_eq!(err.to_string(), "'-all' is not an ip address");
        assert_eq!(runner.recorded().len(), 2);

        runner.expect(
            &["ip", "neigh", "flush", "to", "10.0.0.9"],
            Reply::Fail(2, "Cannot".into()),
        );
        assert_eq!(
            delete_arp_entries(&runner, &["10.0.0.9".into()])
                .unwrap_err()
                .to_string(),
            "Deleting arp entry for 10.0.0.9"
        );
    }

    #[test]
    fn shutdown_powers_off_now() {
        let runner = RecordingRunner::new();
        runner.expect(&["shutdown", "-P", "0"], Reply::Ok(String::new()));
        shutdown(&runner).unwrap();
        assert_eq!(runner.recorded(), vec![vec!["shutdown", "-P", "0"]]);
        runner.expect(&["shutdown", "-P", "0"], Reply::Fail(1, "denied".into()));
        assert_eq!(
            shutdown(&runner).unwrap_err().to_string(),
            "Failed to shutdown"
        );
    }
}
