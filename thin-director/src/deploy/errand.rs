//! `run-errand` (`bosh run-errand`, the director's `jobs/run_errand.rb` and
//! `errand/errand_instance_updater.rb`): runs an errand of a deployed deployment.
//!
//! An errand instance group (`lifecycle: errand`) gets its instances on demand, from the manifest
//! of the last deploy: placed ([`deploy::plan_errand`]), rendered, its packages compiled (from
//! the cache, normally), its VMs created and updated exactly as a deploy creates and updates a
//! group's (canaries, `max_in_flight`, the lifecycle scripts). Then `run_errand` runs on every
//! instance at once, and unless `keep_alive` the instances are deleted, whatever happened; kept
//! alive, they are updated in place by the next run.
//!
//! A name that is no errand group but a job of service groups whose spec renders `bin/run` runs
//! `run_errand <job>` on those groups' instances, as the bosh CLI's `run-errand <job name>` does
//! with errands colocated on service instances.
//!
//! An errand's non-zero exit is a result, not an error: [`failure`] says whether to fail.

use serde_json::{Value, json};

use crate::agent_client::AgentClient;
use crate::deploy::director::Director;
use crate::deploy::{self, Error, Result, Target, compile, instance};
use crate::manifest::deployment::Lifecycle;
use crate::state;

/// What an errand did on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrandRun {
    /// `<group>/<id>`.
    pub instance: String,
    /// Its exit code.
    pub exit_code: i64,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl ErrandRun {
    /// The run from `run_errand`'s answer `{"stdout", "stderr", "exit_code"}`.
    pub fn from_value(instance: &str, value: &Value) -> Option<ErrandRun> {
        Some(ErrandRun {
            instance: instance.to_owned(),
            exit_code: value["exit_code"].as_i64()?,
            stdout: value["stdout"].as_str().unwrap_or_default().to_owned(),
            stderr: value["stderr"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// The run as one JSON object (`--json`).
    pub fn to_json(&self) -> Value {
        json!({
            "type": "errand",
            "instance": self.instance,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
        })
    }
}

/// Runs errand `name` of `deployment` (see the module docs); each instance's run, in instance
/// order.
pub async fn run_errand(
    director: &Director,
    deployment: &str,
    name: &str,
    keep_alive: bool,
) -> Result<Vec<ErrandRun>> {
    let target = deploy::recorded_target(director, deployment).await?;
    let is_errand_group = target
        .deployment
        .instance_groups
        .iter()
        .any(|group| group.name == name && group.lifecycle == Lifecycle::Errand);
    if is_errand_group {
        return run_errand_group(director, &target, name, keep_alive).await;
    }
    let groups = groups_with_errand_job(&target, name);
    if groups.is_empty() {
        return Err(Error::Plan(format!(
            "deployment '{deployment}' has no errand '{name}': it is neither an instance group with \
             `lifecycle: errand` nor a job with a `bin/run` template"
        )));
    }
    let records: Vec<state::Instance> = director
        .instances_of(deployment)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| groups.contains(&r.group))
        .collect();
    run_on(director, &records, Some(name)).await
}

/// The errand's runs as the bosh CLI prints them: one block per instance, then the count.
pub fn table(runs: &[ErrandRun]) -> String {
    const WIDTH: usize = 11;
    let field = |label: &str, value: &str| {
        let value = value.trim_end_matches('\n');
        if value.is_empty() {
            return format!("{label:<WIDTH$}-\n");
        }
        let mut text = String::new();
        for (n, line) in value.split('\n').enumerate() {
            let head = if n == 0 { label } else { "" };
            text.push_str(format!("{head:<WIDTH$}{line}").trim_end());
            text.push('\n');
        }
        text
    };
    let mut text = String::new();
    for run in runs {
        text.push_str(&field("Instance", &run.instance));
        text.push_str(&field("Exit Code", &run.exit_code.to_string()));
        text.push_str(&field("Stdout", &run.stdout));
        text.push_str(&field("Stderr", &run.stderr));
        text.push('\n');
    }
    text.push_str(&format!("{} errand(s)", runs.len()));
    text
}

/// Prints the runs (as [`table`], or one JSON object per run with `--json`).
pub fn print(director: &Director, runs: &[ErrandRun]) {
    if director.report.is_json() {
        for run in runs {
            director.report.item("", &run.to_json());
        }
        director
            .report
            .item("", &json!({"type": "errands", "count": runs.len()}));
    } else {
        director.report.line(&table(runs));
    }
}

/// Why the command must fail, when an errand exited non-zero.
pub fn failure(name: &str, runs: &[ErrandRun]) -> Option<String> {
    let failed: Vec<String> = runs
        .iter()
        .filter(|run| run.exit_code != 0)
        .map(|run| format!("{} (exit code {})", run.instance, run.exit_code))
        .collect();
    (!failed.is_empty()).then(|| format!("errand '{name}' failed on {}", failed.join(", ")))
}

/// An errand group's run: its instances made, updated, run and (unless `keep_alive`) deleted.
async fn run_errand_group(
    director: &Director,
    target: &Target,
    name: &str,
    keep_alive: bool,
) -> Result<Vec<ErrandRun>> {
    let deployment = &target.deployment.name;
    let (planned, taken) = deploy::plan_errand(director, target, name).await?;
    if planned.is_empty() {
        return Err(Error::Plan(format!(
            "errand instance group '{name}' has no instances"
        )));
    }
    // As a deploy: everything rendered and compiled before a VM is touched.
    let rendered = deploy::render_all(director, target, &planned).await?;
    let compiled = compile::compile_packages(director, target, &taken).await?;
    let outcome = async {
        deploy::create_missing_vms(director, target, &planned).await?;
        deploy::update_groups(director, target, &planned, &rendered, &compiled).await?;
        let records = group_records(director, deployment, name).await;
        run_on(director, &records, None).await
    }
    .await;
    if !keep_alive {
        // The errand's VMs go whatever happened (`with_updated_instances`), and with them the
        // instances: the next run places new ones.
        for record in group_records(director, deployment, name).await {
            let step = director.report.step(
                "Deleting errand instances",
                &format!("{}/{} ({})", record.group, record.id, record.index),
            );
            step.finish(instance::delete(director, deployment, &record).await)?;
        }
    }
    outcome
}

/// `run_errand` (with the errand job's name, for errands of service groups) on every instance at
/// once; the first failure, naming its instance, once all are done.
async fn run_on(
    director: &Director,
    records: &[state::Instance],
    job: Option<&str>,
) -> Result<Vec<ErrandRun>> {
    let runs = records.iter().map(|record| async move {
        let name = format!("{}/{}", record.group, record.id);
        let step = director.report.step("Running errand", &name);
        let result = async {
            let vm = record
                .vm
                .as_ref()
                .ok_or_else(|| Error::Plan(format!("{name} has no VM")))?;
            let agent = AgentClient::new(&director.bus, &vm.agent_id);
            let agent_error = |source| Error::Agent {
                instance: name.clone(),
                source,
            };
            agent
                .wait_until_ready(instance::RECONNECT_WAIT)
                .await
                .map_err(agent_error)?;
            let value = agent.run_errand(job).await.map_err(agent_error)?;
            ErrandRun::from_value(&name, &value).ok_or_else(|| {
                agent_error(crate::agent_client::Error::Unexpected {
                    agent_id: vm.agent_id.clone(),
                    method: "run_errand".to_owned(),
                    value,
                    expected: "{\"stdout\",\"stderr\",\"exit_code\"}",
                })
            })
        }
        .await;
        step.finish(result)
    });
    futures_util::future::join_all(runs)
        .await
        .into_iter()
        .collect()
}

/// The recorded instances of `group`.
async fn group_records(director: &Director, deployment: &str, group: &str) -> Vec<state::Instance> {
    director
        .instances_of(deployment)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.group == group)
        .collect()
}

/// The service groups with a job `name` whose spec renders `bin/run`.
fn groups_with_errand_job(target: &Target, name: &str) -> Vec<String> {
    target
        .deployment
        .instance_groups
        .iter()
        .filter(|group| group.lifecycle == Lifecycle::Service)
        .filter(|group| {
            group.jobs.iter().any(|job| {
                job.name == name
                    && target
                        .releases
                        .get(&job.release)
                        .and_then(|release| release.job(&job.name))
                        .is_some_and(|job| job.spec.templates.values().any(|d| d == "bin/run"))
            })
        })
        .map(|group| group.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(instance: &str, exit_code: i64, stdout: &str, stderr: &str) -> ErrandRun {
        ErrandRun {
            instance: instance.into(),
            exit_code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn runs_print_as_the_bosh_cli_prints_them() {
        let runs = [
            run("smoke/a1", 0, "checked\nall good\n", ""),
            run("smoke/b2", 1, "", "broken\n"),
        ];
        assert_eq!(
            table(&runs),
            "Instance   smoke/a1\n\
             Exit Code  0\n\
             Stdout     checked\n\
             \x20          all good\n\
             Stderr     -\n\
             \n\
             Instance   smoke/b2\n\
             Exit Code  1\n\
             Stdout     -\n\
             Stderr     broken\n\
             \n\
             2 errand(s)"
        );
        assert_eq!(table(&[]), "0 errand(s)");
    }

    #[test]
    fn a_non_zero_exit_is_a_failure_naming_the_instances() {
        assert_eq!(failure("smoke", &[run("smoke/a1", 0, "", "")]), None);
        assert_eq!(
            failure(
                "smoke",
                &[run("smoke/a1", 0, "", ""), run("smoke/b2", 3, "", "")]
            )
            .unwrap(),
            "errand 'smoke' failed on smoke/b2 (exit code 3)"
        );
    }

    #[test]
    fn answers_become_runs_or_nothing() {
        let value = json!({"stdout": "out", "stderr": "err", "exit_code": 2});
        assert_eq!(
            ErrandRun::from_value("smoke/a1", &value),
            Some(run("smoke/a1", 2, "out", "err"))
        );
        assert_eq!(
            ErrandRun::from_value("smoke/a1", &json!({"stdout": "out"})),
            None
        );
        assert_eq!(
            run("smoke/a1", 2, "out", "err").to_json(),
            json!({"type": "errand", "instance": "smoke/a1", "exit_code": 2, "stdout": "out", "stderr": "err"})
        );
    }
}
