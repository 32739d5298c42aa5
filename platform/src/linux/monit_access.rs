//! `bosh-enable-monit-access` (`platform/firewall/monit_access.go` and `EnableMonitAccess` in
//! `nftables_firewall.go`, §6.9 of the reference): what a job's pre-start or ctl script runs to let
//! its processes reach monit's port, `127.0.0.1:2822`, past the agent's `monit_access` chain. It
//! adds one rule to `inet bosh_agent monit_access_jobs`, the chain the agent creates and never
//! flushes:
//!
//! * preferred, when the caller runs in a BPM cgroup (`…/runc-bpm-<job>.scope` in the `0::` line
//!   of `/proc/self/cgroup`): `socket cgroupv2 level 2 "<cgroup>" ip daddr 127.0.0.1 tcp dport 2822
//!   log prefix "bosh-monit-access: cgroup match: " accept comment "bosh-monit-access:<job>"`,
//!   after deleting the job's earlier rules (a restarted job has a new cgroup), in the same `nft`
//!   transaction; the cgroup is named by its path relative to the cgroup2 mount, prefixed
//!   `unified/` on a hybrid hierarchy, which `nft` resolves to the inode Go matches;
//! * otherwise, or when that rule cannot be added: `meta skuid <vcap's uid> ip daddr 127.0.0.1 tcp
//!   dport 2822 log prefix "bosh-monit-access: UID <uid> match: " accept`, unless the chain has a
//!   rule for that uid already.
//!
//! A missing table or chain is an error (exit 1), as in Go. Our own supervisor answers the `monit`
//! command on a root-only unix socket, not on TCP 2822; the rule is written for jobs that talk to
//! the port and for the contract's sake.

use std::path::Path;

use serde_json::Value;

use crate::HostPaths;
use crate::bootstrap::{Error, Result};
use crate::cmd::{Cmd, CommandRunner};
use crate::linux::files;
use crate::linux::firewall::{MONIT_JOBS_CHAIN, MONIT_PORT, TABLE, apply_command};

/// The prefix of the comment that tags a job's rule, and of every rule's log prefix.
pub const TAG_PREFIX: &str = "bosh-monit-access:";

/// What `bosh-enable-monit-access` knows of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's cgroup v2 path as `nft` names it (relative to `/sys/fs/cgroup`), when known.
    pub cgroup: Option<String>,
    /// vcap's uid.
    pub vcap_uid: u32,
}

/// The rule that lets the caller in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A rule for the job's cgroup, tagged with the job's name.
    Cgroup {
        /// The job.
        job: String,
        /// Its cgroup.
        cgroup: String,
    },
    /// A rule for vcap's uid (added now, or there already).
    Uid {
        /// The uid.
        uid: u32,
        /// Whether the rule was added now.
        added: bool,
    },
}

/// How the cgroup v2 hierarchy is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup2 on `/sys/fs/cgroup`.
    Unified,
    /// cgroup v1 with cgroup2 on `/sys/fs/cgroup/unified`.
    Hybrid,
    /// No cgroup2 mount.
    Unknown,
}

/// How this host mounts cgroup v2.
pub fn cgroup_mode(host: &HostPaths) -> CgroupMode {
    let is_cgroup2 = |path: &Path| {
        nix::sys::statfs::statfs(path)
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
    };
    if is_cgroup2(&host.sys("fs/cgroup")) {
        CgroupMode::Unified
    } else if is_cgroup2(&host.sys("fs/cgroup/unified")) {
        CgroupMode::Hybrid
    } else {
        CgroupMode::Unknown
    }
}

/// The cgroup v2 path of the `0::` line of `proc_self_cgroup`, as `nft` names it under `mode`.
pub fn cgroup_path(proc_self_cgroup: &str, mode: CgroupMode) -> Option<String> {
    let path = proc_self_cgroup
        .lines()
        .find_map(|line| line.trim().strip_prefix("0::"))?
        .trim_start_matches('/');
    match mode {
        CgroupMode::Unified => Some(path.to_owned()),
        CgroupMode::Hybrid => Some(format!("unified/{path}")),
        CgroupMode::Unknown => None,
    }
}

/// The job of a BPM cgroup: `<job>` of a `runc-bpm-<job>.scope` component.
pub fn job_of(cgroup: &str) -> Option<&str> {
    cgroup.split('/').find_map(|part| {
        part.strip_prefix("runc-bpm-")
            .and_then(|rest| rest.strip_suffix(".scope"))
            .filter(|job| !job.is_empty())
    })
}

/// The caller as this process sees itself on `host`.
pub fn this_caller(host: &HostPaths) -> Result<Caller> {
    let cgroup_file = host.proc("self/cgroup");
    let cgroup = std::fs::read_to_string(&cgroup_file)
        .ok()
        .and_then(|text| cgroup_path(&text, cgroup_mode(host)));
    let vcap = nix::unistd::User::from_name("vcap")
        .map_err(|errno| Error::Host(format!("looking up the vcap user: {errno}")))?
        .ok_or_else(|| Error::Host("could not find vcap user".to_owned()))?;
    Ok(Caller {
        cgroup,
        vcap_uid: vcap.uid.as_raw(),
    })
}

/// A rule of the jobs' chain, as far as this module cares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    handle: u64,
    comment: Option<String>,
    skuid: Option<u64>,
}

/// Adds the rule that lets `caller` reach monit's port.
pub fn enable_monit_access(runner: &dyn CommandRunner, caller: &Caller) -> Result<Access> {
    let rules = list_jobs_chain(runner)?;
    if let Some(cgroup) = &caller.cgroup
        && let Some(job) = job_of(cgroup)
    {
        match files::run(runner, apply_command(&cgroup_script(&rules, cgroup, job))) {
            Ok(_) => {
                return Ok(Access::Cgroup {
                    job: job.to_owned(),
                    cgroup: cgroup.clone(),
                });
            }
            Err(err) => tracing::warn!(
                error = %settings::source::error_chain(&err),
                cgroup,
                "could not add the cgroup rule, falling back to vcap's uid"
            ),
        }
    }
    let uid = caller.vcap_uid;
    if rules.iter().any(|rule| rule.skuid == Some(u64::from(uid))) {
        return Ok(Access::Uid { uid, added: false });
    }
    files::run(runner, apply_command(&uid_script(uid)))?;
    Ok(Access::Uid { uid, added: true })
}

/// Deletes `job`'s earlier rules and adds one for `cgroup`.
fn cgroup_script(rules: &[Listed], cgroup: &str, job: &str) -> String {
    let tag = format!("{TAG_PREFIX}{job}");
    let mut script: String = rules
        .iter()
        .filter(|rule| rule.comment.as_deref() == Some(tag.as_str()))
        .map(|rule| {
            format!(
                "delete rule inet {TABLE} {MONIT_JOBS_CHAIN} handle {}\n",
                rule.handle
            )
        })
        .collect();
    script.push_str(&format!(
        "add rule inet {TABLE} {MONIT_JOBS_CHAIN} socket cgroupv2 level 2 {} \
         ip daddr 127.0.0.1 tcp dport {MONIT_PORT} log prefix \"{TAG_PREFIX} cgroup match: \" \
         accept comment \"{tag}\"\n",
        quote(cgroup)
    ));
    script
}

/// Adds the rule for `uid`.
fn uid_script(uid: u32) -> String {
    format!(
        "add rule inet {TABLE} {MONIT_JOBS_CHAIN} meta skuid {uid} ip daddr 127.0.0.1 \
         tcp dport {MONIT_PORT} log prefix \"{TAG_PREFIX} UID {uid} match: \" accept\n"
    )
}

/// `text` as an nft string (cgroup paths hold no quotes; any would end the string, so they go).
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', ""))
}

/// The rules of the jobs' chain (`nft -j list chain`); an error when the table or chain is absent.
fn list_jobs_chain(runner: &dyn CommandRunner) -> Result<Vec<Listed>> {
    let listing = files::run_stdout(
        runner,
        Cmd::new("nft").args(["-j", "list", "chain", "inet", TABLE, MONIT_JOBS_CHAIN]),
    )?;
    let listing: Value = serde_json::from_str(&listing)
        .map_err(|err| Error::Host(format!("nft's listing of {MONIT_JOBS_CHAIN}: {err}")))?;
    Ok(listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("rule"))
        .filter_map(|rule| {
            Some(Listed {
                handle: rule["handle"].as_u64()?,
                comment: rule["comment"].as_str().map(str::to_owned),
                skuid: rule["expr"].as_array().and_then(|exprs| {
                    exprs.iter().find_map(|expr| {
                        let matched = &expr["match"];
                        (matched["left"]["meta"]["key"] == "skuid")
                            .then(|| matched["right"].as_u64())
                            .flatten()
                    })
                }),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{RecordingRunner, Reply};

    const LIST: &[&str] = &[
        "nft",
        "-j",
        "list",
        "chain",
        "inet",
        "bosh_agent",
        "monit_access_jobs",
    ];

    /// `nft -j`'s listing of the jobs' chain with `rules` (JSON rule bodies).
    fn listing(rules: &[&str]) -> String {
        let mut items = vec![
            r#"{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}"#.to_owned(),
            r#"{"chain": {"family": "inet", "table": "bosh_agent", "name": "monit_access_jobs", "handle": 1}}"#
                .to_owned(),
        ];
        items.extend(rules.iter().map(|rule| format!(r#"{{"rule": {rule}}}"#)));
        format!(r#"{{"nftables": [{}]}}"#, items.join(", "))
    }

    const UID_1000: &str = r#"{"family": "inet", "table": "bosh_agent", "chain": "monit_access_jobs", "handle": 2, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": 1000}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "127.0.0.1"}}, {"accept": null}]}"#;

    const OLD_GALERA: &str = r#"{"family": "inet", "table": "bosh_agent", "chain": "monit_access_jobs", "handle": 7, "comment": "bosh-monit-access:galera-agent", "expr": [{"accept": null}]}"#;

    const OTHER_JOB: &str = r#"{"family": "inet", "table": "bosh_agent", "chain": "monit_access_jobs", "handle": 9, "comment": "bosh-monit-access:other", "expr": [{"accept": null}]}"#;

    #[test]
    fn the_cgroup_path_comes_from_the_v2_line_and_the_job_from_the_bpm_scope() {
        let text = "12:memory:/x\n0::/system.slice/runc-bpm-galera-agent.scope\n";
        assert_eq!(
            cgroup_path(text, CgroupMode::Unified).as_deref(),
            Some("system.slice/runc-bpm-galera-agent.scope")
        );
        assert_eq!(
            cgroup_path(text, CgroupMode::Hybrid).as_deref(),
            Some("unified/system.slice/runc-bpm-galera-agent.scope")
        );
        assert_eq!(cgroup_path(text, CgroupMode::Unknown), None);
        assert_eq!(cgroup_path("3:cpu:/\n", CgroupMode::Unified), None);
        assert_eq!(
            job_of("unified/system.slice/runc-bpm-galera-agent.scope"),
            Some("galera-agent")
        );
        assert_eq!(job_of("system.slice/bosh-agent.service"), None);
        assert_eq!(job_of("system.slice/runc-bpm-.scope"), None);
    }

    #[test]
    fn a_bpm_job_gets_one_cgroup_rule_its_earlier_ones_deleted_in_the_same_transaction() {
        let runner = RecordingRunner::new();
        runner.expect(LIST, Reply::Ok(listing(&[UID_1000, OLD_GALERA, OTHER_JOB])));
        runner.expect(&["nft", "-f", "-"], Reply::Ok(String::new()));
        let caller = Caller {
            cgroup: Some("system.slice/runc-bpm-galera-agent.scope".into()),
            vcap_uid: 1000,
        };
        assert_eq!(
            enable_monit_access(&runner, &caller).unwrap(),
            Access::Cgroup {
                job: "galera-agent".into(),
                cgroup: "system.slice/runc-bpm-galera-agent.scope".into()
            }
        );
        let script =
            String::from_utf8(runner.recorded_commands()[1].stdin.clone().unwrap()).unwrap();
        assert_eq!(
            script,
            "delete rule inet bosh_agent monit_access_jobs handle 7\n\
             add rule inet bosh_agent monit_access_jobs socket cgroupv2 level 2 \
             \"system.slice/runc-bpm-galera-agent.scope\" ip daddr 127.0.0.1 tcp dport 2822 \
             log prefix \"bosh-monit-access: cgroup match: \" accept \
             comment \"bosh-monit-access:galera-agent\"\n"
        );
    }

    #[test]
    fn outside_bpm_or_when_the_cgroup_rule_fails_vcaps_uid_gets_one_rule() {
        // Not a BPM cgroup: the uid rule, added once.
        let runner = RecordingRunner::new();
        runner.expect(LIST, Reply::Ok(listing(&[OTHER_JOB])));
        runner.expect(&["nft", "-f", "-"], Reply::Ok(String::new()));
        let caller = Caller {
            cgroup: Some("user.slice/session-3.scope".into()),
            vcap_uid: 1000,
        };
        assert_eq!(
            enable_monit_access(&runner, &caller).unwrap(),
            Access::Uid {
                uid: 1000,
                added: true
            }
        );
        assert_eq!(
            String::from_utf8(runner.recorded_commands()[1].stdin.clone().unwrap()).unwrap(),
            "add rule inet bosh_agent monit_access_jobs meta skuid 1000 ip daddr 127.0.0.1 \
             tcp dport 2822 log prefix \"bosh-monit-access: UID 1000 match: \" accept\n"
        );

        // Already there: nothing added.
        let runner = RecordingRunner::new();
        runner.expect(LIST, Reply::Ok(listing(&[UID_1000])));
        assert_eq!(
            enable_monit_access(&runner, &caller).unwrap(),
            Access::Uid {
                uid: 1000,
                added: false
            }
        );
        assert_eq!(runner.recorded().len(), 1);

        // A BPM cgroup whose rule nft refuses (no cgroup v2 socket matching): the uid rule.
        let runner = RecordingRunner::new();
        runner.expect(LIST, Reply::Ok(listing(&[])));
        runner.expect(
            &["nft", "-f", "-"],
            Reply::Fail(
                1,
                "Error: cgroupv2 path fails: No such file or directory".into(),
            ),
        );
        runner.expect(&["nft", "-f", "-"], Reply::Ok(String::new()));
        let bpm = Caller {
            cgroup: Some("system.slice/runc-bpm-web.scope".into()),
            vcap_uid: 1000,
        };
        assert_eq!(
            enable_monit_access(&runner, &bpm).unwrap(),
            Access::Uid {
                uid: 1000,
                added: true
            }
        );
        assert!(runner.unused().is_empty());
    }

    #[test]
    fn a_missing_chain_is_an_error_and_nothing_is_added() {
        let runner = RecordingRunner::new();
        runner.expect(
            LIST,
            Reply::Fail(1, "Error: No such file or directory".into()),
        );
        let caller = Caller {
            cgroup: None,
            vcap_uid: 1000,
        };
        let err = enable_monit_access(&runner, &caller).unwrap_err();
        assert_eq!(
            err.to_string(),
            "running nft -j list chain inet bosh_agent monit_access_jobs"
        );
        assert_eq!(runner.recorded().len(), 1);
    }
}
