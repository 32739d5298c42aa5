//! The agent's nftables firewall (`platform/firewall/nftables_firewall.go`, §6.9 of the
//! reference): table `inet bosh_agent` with
//!
//! * `monit_access` (hook output, priority `filter - 1`, policy accept), flushed and refilled by
//!   the bootstrap's firewall step: jump to `monit_access_jobs`, `ct state established,related
//!   accept`, root may reach `127.0.0.1:2822`, everyone else is dropped there;
//! * `monit_access_jobs`, created empty and never flushed (jobs add their own rules);
//! * `nats_access` (same hook and priority), rewritten before every NATS (re)connection: `ct state
//!   established,related accept`, then per NATS address root's packets accepted and everyone
//!   else's dropped.
//!
//! Our agent's monit-compatible endpoint is a unix socket (`<base>/monit/agent.sock`, root-only
//! by its file mode), not TCP 2822; the monit chain is written as the reference writes it anyway,
//! for jobs that talk to `127.0.0.1:2822`.
//!
//! The rules are rendered by pure functions ([`monit_ruleset`], [`nats_ruleset`]) as an `nft`
//! script of `add`/`flush` commands and applied with `nft -f -` (the script on stdin) through the
//! command runner: one script is one atomic transaction, `add table`/`add chain` are no-ops when
//! they exist, and only the chain being rewritten is flushed. Failures are only logged by the
//! callers (the reference's firewall never stops the agent).

use std::net::{IpAddr, SocketAddr};

use crate::bootstrap::Result;
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;

/// The table.
pub const TABLE: &str = "bosh_agent";
/// The agent's monit chain.
pub const MONIT_CHAIN: &str = "monit_access";
/// The jobs' monit chain.
pub const MONIT_JOBS_CHAIN: &str = "monit_access_jobs";
/// The NATS chain.
pub const NATS_CHAIN: &str = "nats_access";
/// monit's API port.
pub const MONIT_PORT: u16 = 2822;

/// The base chain declaration both filter chains share.
const BASE_CHAIN: &str = "{ type filter hook output priority filter - 1; policy accept; }";

/// The `nft` script that sets up the monit chains.
pub fn monit_ruleset() -> String {
    let rule = |text: &str| format!("add rule inet {TABLE} {MONIT_CHAIN} {text}\n");
    let mut script = format!(
        "add table inet {TABLE}\n\
         add chain inet {TABLE} {MONIT_JOBS_CHAIN}\n\
         add chain inet {TABLE} {MONIT_CHAIN} {BASE_CHAIN}\n\
         flush chain inet {TABLE} {MONIT_CHAIN}\n"
    );
    script.push_str(&rule(&format!("jump {MONIT_JOBS_CHAIN}")));
    script.push_str(&rule("ct state established,related accept"));
    script.push_str(&rule(&format!(
        "meta skuid 0 ip daddr 127.0.0.1 tcp dport {MONIT_PORT} accept"
    )));
    script.push_str(&rule(&format!(
        "ip daddr 127.0.0.1 tcp dport {MONIT_PORT} drop"
    )));
    script
}

/// The `nft` script that rewrites the NATS chain for `targets` (resolved NATS addresses); `None`
/// when there is none (the chain is then left as it is, as the reference does).
pub fn nats_ruleset(targets: &[SocketAddr]) -> Option<String> {
    if targets.is_empty() {
        return None;
    }
    let rule = |text: &str| format!("add rule inet {TABLE} {NATS_CHAIN} {text}\n");
    let mut script = format!(
        "add table inet {TABLE}\n\
         add chain inet {TABLE} {NATS_CHAIN} {BASE_CHAIN}\n\
         flush chain inet {TABLE} {NATS_CHAIN}\n"
    );
    script.push_str(&rule("ct state established,related accept"));
    for target in targets {
        let family = match target.ip() {
            IpAddr::V4(_) => "ip",
            IpAddr::V6(_) => "ip6",
        };
        let matcher = format!("{family} daddr {} tcp dport {}", target.ip(), target.port());
        script.push_str(&rule(&format!("meta skuid 0 {matcher} accept")));
        script.push_str(&rule(&format!("{matcher} drop")));
    }
    Some(script)
}

/// `nft -f -` with `script` on stdin.
pub fn apply_command(script: &str) -> Cmd {
    Cmd::new("nft").args(["-f", "-"]).stdin(script.as_bytes())
}

/// Sets up the monit chains.
pub fn setup_monit_firewall(runner: &dyn CommandRunner) -> Result<()> {
    files::run(runner, apply_command(&monit_ruleset())).map(drop)
}

/// Rewrites the NATS chain for `targets`; nothing when there is none.
pub fn setup_nats_firewall(runner: &dyn CommandRunner, targets: &[SocketAddr]) -> Result<()> {
    match nats_ruleset(targets) {
        Some(script) => files::run(runner, apply_command(&script)).map(drop),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    #[test]
    fn the_monit_chain_is_flushed_and_refilled_in_the_references_order() {
        assert_eq!(
            monit_ruleset(),
            "add table inet bosh_agent\n\
             add chain inet bosh_agent monit_access_jobs\n\
             add chain inet bosh_agent monit_access { type filter hook output priority filter - 1; policy accept; }\n\
             flush chain inet bosh_agent monit_access\n\
             add rule inet bosh_agent monit_access jump monit_access_jobs\n\
             add rule inet bosh_agent monit_access ct state established,related accept\n\
             add rule inet bosh_agent monit_access meta skuid 0 ip daddr 127.0.0.1 tcp dport 2822 accept\n\
             add rule inet bosh_agent monit_access ip daddr 127.0.0.1 tcp dport 2822 drop\n"
        );
    }

    #[test]
    fn the_nats_chain_lets_only_root_reach_each_address() {
        let targets: Vec<SocketAddr> = vec![
            "10.0.2.100:4222".parse().unwrap(),
            "[fd00::1]:4223".parse().unwrap(),
        ];
        assert_eq!(
            nats_ruleset(&targets).unwrap(),
            "add table inet bosh_agent\n\
             add chain inet bosh_agent nats_access { type filter hook output priority filter - 1; policy accept; }\n\
             flush chain inet bosh_agent nats_access\n\
             add rule inet bosh_agent nats_access ct state established,related accept\n\
             add rule inet bosh_agent nats_access meta skuid 0 ip daddr 10.0.2.100 tcp dport 4222 accept\n\
             add rule inet bosh_agent nats_access ip daddr 10.0.2.100 tcp dport 4222 drop\n\
             add rule inet bosh_agent nats_access meta skuid 0 ip6 daddr fd00::1 tcp dport 4223 accept\n\
             add rule inet bosh_agent nats_access ip6 daddr fd00::1 tcp dport 4223 drop\n"
        );
        assert_eq!(nats_ruleset(&[]), None, "nothing resolved, nothing flushed");
    }

    #[test]
    fn rulesets_go_to_nft_on_stdin_and_failures_are_errors() {
        let runner = RecordingRunner::new();
        runner.expect(&["nft", "-f", "-"], Reply::Ok(String::new()));
        setup_monit_firewall(&runner).unwrap();
        assert_eq!(runner.recorded(), vec![vec!["nft", "-f", "-"]]);
        assert_eq!(
            apply_command(&monit_ruleset()).stdin.unwrap(),
            monit_ruleset().into_bytes()
        );

        setup_nats_firewall(&runner, &[]).unwrap();
        assert_eq!(runner.recorded().len(), 1, "no target, no nft");
        runner.expect(
            &["nft", "-f", "-"],
            Reply::Fail(
                1,
                "Error: Could not process rule: Operation not supported".into(),
            ),
        );
        let err = setup_nats_firewall(&runner, &["10.0.2.100:4222".parse().unwrap()]).unwrap_err();
        assert_eq!(err.to_string(), "running nft -f -");
    }
}
