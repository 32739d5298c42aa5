//! The health monitor end to end: the example deployed with the real `process-cpi`, `bosh-agent`
//! processes heartbeating every second (the agent's test-only `BOSH_AGENT_HEARTBEAT_SECS`, given
//! through the process CPI's `agent.env`) and a real `nats-server`; one VM deleted behind the
//! director's back; the monitor run in-process with a 5 s agent timeout, first with resurrection
//! off (the silent agent is only reported), then on (the instance gets a new VM and keeps its
//! disk).

use std::time::Duration;

use thin_director::deploy::director::Director;
use thin_director::deploy::inspect;
use thin_director::health;
use thin_director::state;

use crate::support::deployment::Fixture;

/// How long a monitor phase may take before the test gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

/// The recorded instance `hello/<index>`.
async fn record(director: &Director, index: u32) -> state::Instance {
    director
        .instances_of("hello")
        .await
        .unwrap()
        .into_iter()
        .find(|instance| instance.group == "hello" && instance.index == index)
        .unwrap()
}

/// Runs the monitor until `watch` is done, then stops it; `watch`'s value.
async fn monitored<T>(
    director: &Director,
    config: &health::Config,
    watch: impl std::future::Future<Output = T>,
) -> T {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let monitor = health::run(director, config, async {
        let _ = stopped.await;
    });
    let watch = async {
        let value = watch.await;
        let _ = stop.send(());
        value
    };
    let (outcome, value) = tokio::join!(monitor, watch);
    outcome.unwrap();
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_is_only_reported_with_resurrection_off_and_resurrected_with_its_disk_when_on()
 {
    let fixture = Fixture::new();
    let output = &fixture.output;
    // `agent::heartbeat::INTERVAL_ENV`: heartbeats every second instead of every 30 s.
    let director = fixture
        .director_with(|config| {
            config
                .agent_env
                .insert("BOSH_AGENT_HEARTBEAT_SECS".into(), "1".into());
        })
        .await;
    let manifest = fixture.manifest("manifest.yml", |text| text);
    let summary = fixture.deploy(&director, &manifest).await.unwrap();
    assert_eq!(summary.created, 3);
    let before = [
        record(&director, 0).await,
        record(&director, 1).await,
        record(&director, 2).await,
    ];
    let victim = &before[0];
    let old_vm = victim.vm.clone().unwrap();
    let name = format!("hello/{} (0) in 'hello'", victim.id);

    // Resurrection off: the silent agent is reported and its instance left alone.
    let monitor = health::Config {
        agent_timeout: Duration::from_secs(5),
        analyze_interval: Duration::from_millis(200),
        resurrect: false,
        ..health::Config::default()
    };
    let lines = monitored(&director, &monitor, async {
        director.cpi.delete_vm(&old_vm.cid).await.unwrap();
        output
            .wait_for(PHASE_TIMEOUT, |line| {
                line == format!("{name}: not resurrected: resurrection is off")
            })
            .await
    })
    .await;
    let timed_out: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("has timed out"))
        .collect();
    assert_eq!(timed_out.len(), 1, "{lines:#?}");
    assert!(
        timed_out[0].starts_with(&format!("{name}: agent {} has timed out", old_vm.agent_id)),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|line| line.starts_with("Resurrecting")),
        "{lines:#?}"
    );
    // `run` returned, so no resurrection is under way either: the state still has the old VM.
    assert_eq!(record(&director, 0).await.vm, Some(old_vm.clone()));

    // Resurrection on: the instance gets a new VM with its disk, the others are left alone.
    let monitor = health::Config {
        resurrect: true,
        ..monitor
    };
    let lines = monitored(&director, &monitor, async {
        output
            .wait_for(PHASE_TIMEOUT, |line| {
                line.starts_with(&format!("Resurrected hello/{} (0)", victim.id))
                    || line.starts_with(&format!(
                        "Resurrecting hello/{} (0) in 'hello' failed",
                        victim.id
                    ))
            })
            .await
    })
    .await;
    assert!(
        lines
            .iter()
            .any(|line| line == &format!("Resurrected hello/{} (0) in 'hello'", victim.id)),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(&format!("Deleting VM: hello/{} (0)", victim.id))),
        "{lines:#?}"
    );
    let after = record(&director, 0).await;
    let new_vm = after.vm.clone().unwrap();
    assert_ne!(new_vm.cid, old_vm.cid);
    assert_eq!(after.disk, victim.disk);
    assert!(after.disk.is_some());
    for (index, old) in before.iter().enumerate().skip(1) {
        let index = u32::try_from(index).unwrap();
        assert_eq!(record(&director, index).await.vm, old.vm, "hello/{index}");
    }
    let rows = inspect::instances(&director, "hello").await.unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row.state, "running", "{row:?}");
    }
    assert_eq!(rows[0].vm_cid, new_vm.cid);

    inspect::delete_deployment(&director, "hello")
        .await
        .unwrap();
    director.stop().await;
}
