//! The example manifest and cloud config under `tests/fixtures/manifest/`: read in full, then broken
//! one way at a time, each time checking the exact lines an operator would see.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thin_director::manifest::deployment::{DefaultFor, Lifecycle, PersistentDisk};
use thin_director::manifest::placement::{self, Address};
use thin_director::manifest::update::Count;
use thin_director::manifest::{self, CloudConfig, Deployment};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifest")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn deployment_text() -> String {
    fixture("deployment.yml")
}

fn cloud_config_text() -> String {
    fixture("cloud-config.yml")
}

/// Replaces `from` (which must be there) with `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "fixture has no {from:?}");
    text.replacen(from, to, 1)
}

/// The lines `manifest::load` reports.
fn problems(deployment: &str, cloud_config: &str) -> Vec<String> {
    match manifest::load(deployment, cloud_config) {
        Ok(_) => Vec::new(),
        Err(err) => err.to_string().lines().map(str::to_owned).collect(),
    }
}

fn manifest_problems(deployment: &str) -> Vec<String> {
    problems(deployment, &cloud_config_text())
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn the_example_manifest_and_cloud_config_load() {
    let (deployment, cloud_config) =
        manifest::load(&deployment_text(), &cloud_config_text()).unwrap();
    assert_eq!(deployment.name, "bookstore");
    assert_eq!(deployment.releases[1].version, "43");
    assert_eq!(
        deployment.releases[1].tarball_path(Path::new("/deployments/bookstore")),
        Some(PathBuf::from(
            "/deployments/bookstore/releases/postgres-43.tgz"
        ))
    );
    assert_eq!(
        deployment.releases[0].sha1.as_ref().unwrap().to_string(),
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
    assert_eq!(deployment.stemcell("default").unwrap().os, "ubuntu-jammy");
    assert_eq!(deployment.tags["cost_center"], "42");
    assert_eq!(deployment.properties["legacy_global"], true);

    let db = deployment.instance_group("db").unwrap();
    assert_eq!(db.persistent_disk, PersistentDisk::Type("ssd".into()));
    assert_eq!(
        db.jobs[0].properties.as_ref().unwrap()["databases"]["port"],
        5432
    );
    assert_eq!(db.update.max_in_flight, Count::Percent(25));
    assert!(db.update.serial);

    let web = deployment.instance_group("web").unwrap();
    assert_eq!(web.update.max_in_flight(web.instances), 2);
    assert_eq!(web.update.canaries(web.instances), 1);
    assert!(!web.update.serial);
    assert_eq!(
        web.default_network(DefaultFor::Dns).unwrap().name,
        "private"
    );
    assert_eq!(web.env["bosh"]["password"], "*");
    // 1000-60000 ms: the first check after 1 s, then 9 checks 6.56 s apart.
    let schedule = web.update.update_watch_time.schedule();
    assert_eq!(schedule.len(), 10);
    assert_eq!(schedule[0], Duration::from_secs(1));
    assert_eq!(schedule[9], Duration::from_secs_f64(59.0 / 9.0));

    let migrate = deployment.instance_group("migrate").unwrap();
    assert_eq!(migrate.lifecycle, Lifecycle::Errand);
    assert_eq!(migrate.persistent_disk, PersistentDisk::Size { mb: 1024 });

    assert_eq!(cloud_config.compilation.workers, 2);
    assert_eq!(
        cloud_config.vm_type("small").unwrap().cloud_properties["instance_type"],
        "t3.small"
    );
}

#[test]
fn placement_of_the_example_is_deterministic_and_keeps_addresses() {
    let (deployment, cloud_config) =
        manifest::load(&deployment_text(), &cloud_config_text()).unwrap();
    let db = deployment.instance_group("db").unwrap();
    let web = deployment.instance_group("web").unwrap();

    let db_placements = placement::place(db, &cloud_config, &[], &BTreeSet::new()).unwrap();
    assert_eq!(db_placements[0].az.as_deref(), Some("z1"));
    assert_eq!(
        db_placements[0].networks[0].address,
        Address::Static {
            ip: ip("10.10.0.10"),
            subnet: 0
        }
    );

    let in_use = BTreeSet::from([ip("10.10.0.20")]);
    let web_placements = placement::place(web, &cloud_config, &[], &in_use).unwrap();
    let summary: Vec<(Option<&str>, Option<IpAddr>, Option<IpAddr>)> = web_placements
        .iter()
        .map(|p| {
            (
                p.az.as_deref(),
                p.networks[0].address.ip(),
                p.networks[1].address.ip(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Some("z1"), Some(ip("10.10.0.21")), None),
            (Some("z2"), Some(ip("10.10.1.10")), None),
            (Some("z1"), Some(ip("10.10.0.22")), None),
            (Some("z2"), Some(ip("10.10.1.11")), None),
        ]
    );
    // A redeploy handing back what was recorded gets the same addresses even though the address
    // that was in use before is free now.
    let previous: Vec<_> = web_placements
        .iter()
        .map(|p| {
            [("private".to_owned(), p.networks[0].address.ip().unwrap())]
                .into_iter()
                .collect()
        })
        .collect();
    let again = placement::place(web, &cloud_config, &previous, &BTreeSet::new()).unwrap();
    assert_eq!(again, web_placements);
}

#[test]
fn unknown_keys_are_refused_with_their_paths() {
    let deployment = edit(
        &deployment_text(),
        "  - name: postgres\n    release: postgres\n",
        "  - name: postgres\n    release: postgres\n    colour: blue\n",
    );
    let deployment = edit(&deployment, "tags:\n", "addons: []\ntags:\n");
    let cloud_config = edit(
        &cloud_config_text(),
        "    gateway: 10.10.0.1\n",
        "    gateway: 10.10.0.1\n    gatway: 10.10.0.1\n",
    );
    assert_eq!(
        problems(&deployment, &cloud_config),
        [
            "addons: not supported by the thin director",
            "instance_groups[0].jobs[0].colour: unknown key",
            "cloud config: networks[0].subnets[0].gatway: unknown key",
        ]
    );
}

#[test]
fn wrong_types_are_refused_with_their_paths() {
    let deployment = edit(&deployment_text(), "instances: 4", "instances: four");
    let deployment = edit(&deployment, "  azs: [z1, z2]", "  azs: z1");
    let deployment = edit(&deployment, "serial: true", "serial: yes please");
    assert_eq!(
        manifest_problems(&deployment),
        [
            "update.serial: expected a boolean, found a string",
            "instance_groups[1].instances: expected an integer, found a string",
            "instance_groups[1].azs: expected a list, found a string",
        ]
    );
}

#[test]
fn missing_required_keys_are_refused_with_their_paths() {
    let deployment = edit(&deployment_text(), "  vm_type: medium\n", "");
    let deployment = edit(
        &deployment,
        "  - name: bookstore\n    release: bookstore\n",
        "  - name: bookstore\n",
    );
    let deployment = edit(&deployment, "  canaries: 1\n", "");
    assert_eq!(
        manifest_problems(&deployment),
        [
            "update.canaries: missing required key",
            "instance_groups[0].vm_type: missing required key",
            "instance_groups[1].jobs[0].release: missing required key",
        ]
    );
}

#[test]
fn a_job_naming_an_unknown_release_is_refused() {
    let deployment = edit(
        &deployment_text(),
        "  - name: migrate\n    release: bookstore\n",
        "  - name: migrate\n    release: bookshop\n",
    );
    assert_eq!(
        manifest_problems(&deployment),
        ["instance_groups[2].jobs[0].release: release \"bookshop\" is not in releases"]
    );
}

#[test]
fn unknown_vm_types_stemcells_networks_azs_and_disk_types_are_refused() {
    let deployment = edit(
        &deployment_text(),
        "  vm_type: medium\n",
        "  vm_type: huge\n",
    );
    let deployment = edit(
        &deployment,
        "persistent_disk_type: ssd",
        "persistent_disk_type: nvme",
    );
    let deployment = edit(&deployment, "  azs: [z1, z2]", "  azs: [z1, z3]");
    let deployment = edit(&deployment, "  - name: internet\n", "  - name: intranet\n");
    assert_eq!(
        manifest_problems(&deployment),
        [
            "instance_groups[0].vm_type: vm_type \"huge\" is not in the cloud config",
            "instance_groups[0].persistent_disk_type: disk_type \"nvme\" is not in the cloud config",
            "instance_groups[1].azs[1]: az \"z3\" is not in the cloud config",
            "instance_groups[1].networks[0].name: network \"private\" has no subnet in az \"z3\"",
            "instance_groups[1].networks[1].name: network \"intranet\" is not in the cloud config",
        ]
    );
    let deployment = edit(
        &deployment_text(),
        "  stemcell: default\n  persistent_disk: 1024",
        "  stemcell: bionic\n  persistent_disk: 1024",
    );
    assert_eq!(
        manifest_problems(&deployment),
        ["instance_groups[2].stemcell: stemcell \"bionic\" is not in stemcells"]
    );
}

#[test]
fn static_ips_outside_static_ranges_are_refused() {
    let deployment = edit(
        &deployment_text(),
        "static_ips: [10.10.0.10]",
        "static_ips: [10.10.0.30]",
    );
    assert_eq!(
        manifest_problems(&deployment),
        [
            "instance_groups[0].networks[0].static_ips[0]: 10.10.0.30 is not in a static range of a \
             subnet of network \"private\" serving the instance group's azs"
        ]
    );
}

#[test]
fn more_or_fewer_static_ips_than_instances_are_refused() {
    let deployment = edit(
        &deployment_text(),
        "static_ips: [10.10.0.10]",
        "static_ips: [10.10.0.10 - 10.10.0.11]",
    );
    assert_eq!(
        manifest_problems(&deployment),
        ["instance_groups[0].networks[0].static_ips: 2 static IPs for 1 instances"]
    );
    let deployment = edit(
        &deployment_text(),
        "  instances: 1\n  azs: [z1]\n  vm_type: medium",
        "  instances: 2\n  azs: [z1]\n  vm_type: medium",
    );
    assert_eq!(
        manifest_problems(&deployment),
        ["instance_groups[0].networks[0].static_ips: 1 static IPs for 2 instances"]
    );
}

#[test]
fn duplicate_names_are_refused() {
    let deployment = edit(&deployment_text(), "- name: migrate\n", "- name: web\n");
    let deployment = edit(
        &deployment,
        "- name: postgres\n  version: 43",
        "- name: bookstore\n  version: 43",
    );
    let cloud_config = edit(&cloud_config_text(), "- name: small\n", "- name: medium\n");
    assert_eq!(
        problems(&deployment, &cloud_config),
        [
            "releases[1].name: duplicate release name \"bookstore\"",
            "instance_groups[2].name: duplicate instance group name \"web\"",
            "instance_groups[0].jobs[0].release: release \"postgres\" is not in releases",
            "cloud config: vm_types[1].name: duplicate vm_type name \"medium\"",
        ]
    );
}

#[test]
fn negative_instances_are_refused() {
    let deployment = edit(&deployment_text(), "instances: 4", "instances: -4");
    assert_eq!(
        manifest_problems(&deployment),
        ["instance_groups[1].instances: must not be negative, found -4"]
    );
}

#[test]
fn ip_ranges_that_do_not_parse_are_refused() {
    let cloud_config = edit(
        &cloud_config_text(),
        "static: [10.10.0.10 - 10.10.0.19]",
        "static: [10.10.0.10 - 10.10.0.300]",
    );
    let cloud_config = edit(&cloud_config, "range: 10.10.1.0/24", "range: 10.10.1.0");
    let deployment = edit(
        &deployment_text(),
        "static_ips: [10.10.0.10]",
        "static_ips: [10.10.0.x]",
    );
    assert_eq!(
        problems(&deployment, &cloud_config),
        [
            "instance_groups[0].networks[0].static_ips[0]: invalid IP address \"10.10.0.x\"",
            "cloud config: networks[0].subnets[0].static[0]: invalid IP range \"10.10.0.10 - 10.10.0.300\"",
            "cloud config: networks[0].subnets[1].range: invalid CIDR range \"10.10.1.0\"",
        ]
    );
}

#[test]
fn max_in_flight_zero_is_refused() {
    let deployment = edit(&deployment_text(), "max_in_flight: 25%", "max_in_flight: 0");
    let deployment = edit(
        &deployment,
        "    max_in_flight: 2\n",
        "    max_in_flight: 0%\n",
    );
    assert_eq!(
        manifest_problems(&deployment),
        [
            "update.max_in_flight: must be at least 1",
            "instance_groups[1].update.max_in_flight: must be at least 1",
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let deployment = edit(&deployment_text(), "instances: 4", "instances: -4");
    let deployment = edit(&deployment, "max_in_flight: 25%", "max_in_flight: 0");
    let cloud_config = edit(
        &cloud_config_text(),
        "  workers: 2\n",
        "  workers: 2\n  cpus: 4\n",
    );
    let lines = problems(&deployment, &cloud_config);
    assert_eq!(
        lines,
        [
            "update.max_in_flight: must be at least 1",
            "instance_groups[1].instances: must not be negative, found -4",
            "cloud config: compilation.cpus: unknown key",
        ]
    );
    // The same text comes out of `Display`, one problem per line.
    let err = manifest::load(&deployment, &cloud_config).unwrap_err();
    assert_eq!(err.problems.len(), 3);
    assert_eq!(err.to_string(), lines.join("\n"));
}

#[test]
fn documents_parse_on_their_own() {
    Deployment::parse(&deployment_text()).unwrap();
    CloudConfig::parse(&cloud_config_text()).unwrap();
    let err = Deployment::parse("name: [x]\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "name: expected a string, found a list\n\
         releases: missing required key\n\
         stemcells: missing required key\n\
         update: missing required key\n\
         instance_groups: missing required key"
    );
}
