//! `instances` (a table of a deployment's instances with their process states and vitals, from
//! `get_state` with the 5 s timeout `bosh vms` uses) and `delete-deployment`.

use std::time::Duration;

use agent::client;
use serde_json::{Value, json};

use crate::agent_client::AgentClient;
use crate::deploy::director::Director;
use crate::deploy::{Error, Result, instance};

/// `get_state`'s timeout for `instances` (`jobs/vm_state.rb`).
pub const STATE_TIMEOUT: Duration = Duration::from_secs(5);

/// One row of the instances table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `<group>/<id>`.
    pub instance: String,
    /// Its index.
    pub index: u32,
    /// `job_state`, or `unresponsive agent`.
    pub state: String,
    /// Its AZ.
    pub az: String,
    /// Its IPs, comma-separated.
    pub ips: String,
    /// Its VM's cid.
    pub vm_cid: String,
    /// Its processes and their states.
    pub processes: Vec<(String, String)>,
    /// `vitals` of `get_state full`, when answered.
    pub vitals: Value,
}

/// The rows of `deployment`.
pub async fn instances(director: &Director, deployment: &str) -> Result<Vec<Row>> {
    let recorded = director
        .instances_of(deployment)
        .await
        .ok_or_else(|| Error::Plan(format!("deployment '{deployment}' does not exist")))?;
    // Agents reconnect to a freshly started director within seconds: wait for them all at once.
    let answers = futures_util::future::join_all(recorded.iter().map(|record| async move {
        let vm = record.vm.as_ref()?;
        AgentClient::new(&director.bus, &vm.agent_id)
            .wait_until_ready(instance::RECONNECT_WAIT)
            .await
            .ok()?;
        client::call(
            &director.bus,
            &vm.agent_id,
            "get_state",
            vec![json!("full")],
            STATE_TIMEOUT,
        )
        .await
        .ok()
    }))
    .await;
    let mut rows = Vec::new();
    for (record, answer) in recorded.into_iter().zip(answers) {
        let state = match (&record.vm, &answer) {
            (None, _) => "no vm".to_owned(),
            (Some(_), None) => "unresponsive agent".to_owned(),
            (Some(_), Some(answer)) => answer["job_state"].as_str().unwrap_or("unknown").to_owned(),
        };
        let processes = answer
            .as_ref()
            .and_then(|a| a["processes"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_owned(),
                    p["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        rows.push(Row {
            instance: format!("{}/{}", record.group, record.id),
            index: record.index,
            state,
            az: record.az.clone().unwrap_or_else(|| "-".to_owned()),
            ips: record.ips.values().cloned().collect::<Vec<_>>().join(","),
            vm_cid: record
                .vm
                .as_ref()
                .map_or("-".to_owned(), |vm| vm.cid.clone()),
            processes,
            vitals: answer.map(|a| a["vitals"].clone()).unwrap_or(Value::Null),
        });
    }
    Ok(rows)
}

/// The rows as the bosh CLI prints `bosh instances --ps`.
pub fn table(rows: &[Row]) -> String {
    let mut lines = vec![(
        "Instance".to_owned(),
        "Process State".to_owned(),
        "AZ".to_owned(),
        "IPs".to_owned(),
        "VM CID".to_owned(),
    )];
    for row in rows {
        lines.push((
            format!("{} ({})", row.instance, row.index),
            row.state.clone(),
            row.az.clone(),
            row.ips.clone(),
            row.vm_cid.clone(),
        ));
        for (name, state) in &row.processes {
            lines.push((
                format!("~ {name}"),
                state.clone(),
                String::new(),
                String::new(),
                String::new(),
            ));
        }
    }
    let width = |pick: fn(&(String, String, String, String, String)) -> &String| {
        lines.iter().map(|l| pick(l).len()).max().unwrap_or(0)
    };
    let (w0, w1, w2, w3) = (
        width(|l| &l.0),
        width(|l| &l.1),
        width(|l| &l.2),
        width(|l| &l.3),
    );
    let mut text = String::new();
    for (a, b, c, d, e) in &lines {
        let line = format!("{a:<w0$}  {b:<w1$}  {c:<w2$}  {d:<w3$}  {e}");
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push_str(&format!("\n{} instances\n", rows.len()));
    text
}

/// Deletes every instance of `deployment` (stopping its jobs, deleting its VMs and disks) and
/// forgets it.
pub async fn delete_deployment(director: &Director, deployment: &str) -> Result<usize> {
    let recorded = director
        .instances_of(deployment)
        .await
        .ok_or_else(|| Error::Plan(format!("deployment '{deployment}' does not exist")))?;
    for record in &recorded {
        let name = format!("{}/{} ({})", record.group, record.id, record.index);
        let step = director.report.step("Deleting instances", &name);
        step.finish(instance::delete(director, deployment, record).await)?;
    }
    director
        .state
        .lock()
        .await
        .update(|doc| doc.deployments.remove(deployment))?;
    Ok(recorded.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up_its_columns_and_lists_processes() {
        let rows = vec![Row {
            instance: "web/abc".into(),
            index: 0,
            state: "running".into(),
            az: "z1".into(),
            ips: "10.0.0.10".into(),
            vm_cid: "vm-1".into(),
            processes: vec![("hello".into(), "running".into())],
            vitals: Value::Null,
        }];
        assert_eq!(
            table(&rows),
            "Instance     Process State  AZ  IPs        VM CID\nweb/abc (0)  running        z1  10.0.0.10  vm-1\n~ hello      running\n\n1 instances\n"
        );
    }
}
