//! Unit tests of the settings model's derived rules.

use std::collections::BTreeMap;

use crate::model::*;

fn network(json: &str) -> Network {
    crate::gojson::from_slice(json.as_bytes()).unwrap()
}

#[test]
fn mbus_url_precedence_is_update_settings_then_env_then_top_level() {
    let mut settings = Settings {
        mbus: "nats://top".into(),
        ..Settings::default()
    };
    assert_eq!(settings.mbus_url(), "nats://top");
    settings.env.bosh.mbus.urls = vec!["nats://env1".into(), "nats://env2".into()];
    assert_eq!(settings.mbus_url(), "nats://env1");
    assert_eq!(settings.mbus_urls().len(), 2);
    settings.update_settings.mbus.urls = vec!["nats://update".into()];
    assert_eq!(settings.mbus_urls(), ["nats://update".to_owned()]);
    assert!(Settings::default().mbus_urls().is_empty());
}

#[test]
fn mbus_certs_come_from_update_settings_only_when_its_ca_is_set() {
    let mut settings = Settings::default();
    settings.env.bosh.mbus.cert.ca = "env-ca".into();
    settings.update_settings.mbus.cert.certificate = "update-cert-without-ca".into();
    assert_eq!(settings.mbus_certs().ca, "env-ca");
    settings.update_settings.mbus.cert.ca = "update-ca".into();
    assert_eq!(settings.mbus_certs().ca, "update-ca");
}

#[test]
fn blobstore_precedence_is_update_settings_then_env_then_top_level() {
    let named = |provider: &str| Blobstore {
        provider: provider.into(),
        options: BTreeMap::new(),
    };
    let mut settings = Settings {
        blobstore: named("top"),
        ..Settings::default()
    };
    assert_eq!(settings.blobstore().provider, "top");
    settings.env.bosh.blobstores = vec![named("env"), named("env2")];
    assert_eq!(settings.blobstore().provider, "env");
    settings.update_settings.blobstores = vec![named("update")];
    assert_eq!(settings.blobstore().provider, "update");
}

#[test]
fn env_ntp_wins_even_when_empty() {
    let mut settings = Settings {
        ntp: vec!["0.pool.ntp.org".into()],
        ..Settings::default()
    };
    assert_eq!(settings.ntp_servers(), ["0.pool.ntp.org".to_owned()]);
    settings.env.bosh.ntp = Some(Vec::new());
    assert!(settings.ntp_servers().is_empty());
}

#[test]
fn swap_size_is_configured_or_ram_or_half_the_disk() {
    let gib = 1024 * 1024 * 1024;
    let mut env = Env::default();
    assert_eq!(env.swap_size_bytes(4 * gib, 20 * gib), 4 * gib);
    assert_eq!(env.swap_size_bytes(16 * gib, 20 * gib), 10 * gib);
    env.bosh.swap_size = Some(0);
    assert_eq!(env.swap_size_bytes(4 * gib, 20 * gib), 0);
    env.bosh.swap_size = Some(512);
    assert_eq!(env.swap_size_bytes(4 * gib, 20 * gib), 512 * 1024 * 1024);
}

#[test]
fn parallel_defaults_to_five() {
    let mut env = BoshEnv::default();
    assert_eq!(env.parallel(), 5);
    env.parallel = Some(1);
    assert_eq!(env.parallel(), 1);
}

#[test]
fn is_dhcp_follows_the_go_rules() {
    assert!(network(r#"{"type":"dynamic","ip":"10.0.0.5","netmask":"255.255.255.0"}"#).is_dhcp());
    assert!(
        network(r#"{"type":"manual","ip":"10.0.0.5","netmask":"255.255.255.0","use_dhcp":true}"#)
            .is_dhcp()
    );
    assert!(network(r#"{"ip":"10.0.0.5","netmask":"255.255.255.0","resolved":true}"#).is_dhcp());
    // A manual network without an address or netmask cannot be configured statically.
    assert!(network(r#"{"type":"manual","ip":"10.0.0.5"}"#).is_dhcp());
    assert!(!network(r#"{"type":"manual","ip":"10.0.0.5","netmask":"255.255.255.0"}"#).is_dhcp());
    assert!(!network(r#"{"type":"vip","use_dhcp":true}"#).is_dhcp());
}

#[test]
fn default_network_is_the_only_one_or_the_first_listing_the_category() {
    let mut networks = Networks::default();
    networks
        .0
        .insert("only".into(), network(r#"{"ip":"10.0.0.1"}"#));
    assert_eq!(
        networks.default_network_for("dns").map(|(n, _)| n),
        Some("only")
    );
    networks.0.insert(
        "b".into(),
        network(r#"{"ip":"10.0.0.2","default":["dns","gateway"]}"#),
    );
    networks.0.insert(
        "c".into(),
        network(r#"{"ip":"10.0.0.3","default":["dns"]}"#),
    );
    assert_eq!(
        networks.default_network_for("gateway").map(|(n, _)| n),
        Some("b")
    );
    assert_eq!(
        networks.default_network_for("dns").map(|(n, _)| n),
        Some("b")
    );
    assert_eq!(networks.default_network_for("addressable"), None);
    assert_eq!(networks.default_ip(), Some("10.0.0.2"));
}

#[test]
fn preconfigured_means_every_non_vip_network_is() {
    let mut networks = Networks::default();
    networks
        .0
        .insert("a".into(), network(r#"{"preconfigured":true}"#));
    networks
        .0
        .insert("public".into(), network(r#"{"type":"vip","ip":"1.2.3.4"}"#));
    assert!(networks.is_preconfigured());
    networks
        .0
        .insert("b".into(), network(r#"{"preconfigured":false}"#));
    assert!(!networks.is_preconfigured());
}

#[test]
fn string_disks_set_path_and_volume_id() {
    let settings = Settings::parse(
        br#"{"disks":{"ephemeral":"/dev/sdb","persistent":{"disk-1":"/dev/sdc"}}}"#,
    )
    .unwrap();
    let ephemeral = settings.ephemeral_disk_settings();
    assert_eq!(
        (ephemeral.path.as_str(), ephemeral.volume_id.as_str()),
        ("/dev/sdb", "/dev/sdb")
    );
    let persistent = settings.persistent_disk_settings("disk-1").unwrap();
    assert_eq!(persistent.id, "disk-1");
    assert_eq!(persistent.path, "/dev/sdc");
}

#[test]
fn object_disks_carry_every_field_and_the_env_persistent_options() {
    let settings = Settings::parse(
        br#"{"disks":{"persistent":{"disk-2":{"id":"virtio-serial-0000000001","volume_id":"3","lun":"0",
              "host_device_id":"{hd}","iscsi_settings":{"initiator_name":"iqn.x","username":"u","password":"p","target":"10.0.0.9"}}}},
             "env":{"persistent_disk_fs":"xfs","persistent_disk_mount_options":["noatime"],"persistent_disk_partitioner":"parted"}}"#,
    )
    .unwrap();
    let disk = settings.persistent_disk_settings("disk-2").unwrap();
    assert_eq!(disk.device_id, "virtio-serial-0000000001");
    assert_eq!(disk.volume_id, "3");
    assert_eq!(disk.lun, "0");
    assert_eq!(disk.host_device_id, "{hd}");
    assert_eq!(disk.iscsi_settings.target, "10.0.0.9");
    assert_eq!(disk.iscsi_settings.password, "p");
    assert_eq!(disk.file_system_type, "xfs");
    assert_eq!(disk.mount_options, vec!["noatime".to_owned()]);
    assert_eq!(disk.partitioner, "parted");
}

#[test]
fn a_disk_of_the_wrong_type_names_the_field() {
    let err = Settings::parse(br#"{"disks":{"persistent":{"disk-1":{"path":7}}}}"#).unwrap_err();
    assert_eq!(err.path, "disks.persistent.disk-1.path");
    let err = Settings::parse(br#"{"disks":{"ephemeral":42}}"#).unwrap_err();
    assert_eq!(err.path, "disks.ephemeral");
}

#[test]
fn hints_win_over_settings_and_unknown_disks_get_the_go_error() {
    let settings = Settings::parse(br#"{"disks":{"persistent":{"disk-1":"/dev/sdc"}}}"#).unwrap();
    let hint =
        settings.persistent_disk_settings_from_hint("disk-1", &DiskSpec::Path("/dev/sdz".into()));
    let hints = BTreeMap::from([("disk-1".to_owned(), hint)]);
    assert_eq!(
        settings
            .persistent_disk_settings_with_hints("disk-1", &hints)
            .unwrap()
            .path,
        "/dev/sdz"
    );
    assert_eq!(settings.all_persistent_disk_settings(&hints).len(), 1);
    let err = settings
        .persistent_disk_settings_with_hints("disk-9", &hints)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Persistent disk with volume id 'disk-9' could not be found"
    );
}

#[test]
fn raw_ephemeral_and_routes_use_go_field_names() {
    let settings = Settings::parse(
        br#"{"disks":{"raw_ephemeral":[{"id":"nvme-1","path":"/dev/nvme1n1"}]},
             "networks":{"n":{"ip":"10.0.0.5","routes":[{"destination":"10.1.0.0","gateway":"10.0.0.1","netmask":"255.255.0.0"}]}}}"#,
    )
    .unwrap();
    assert_eq!(
        settings.raw_ephemeral_disk_settings()[0].path,
        "/dev/nvme1n1"
    );
    let json: serde_json::Value = serde_json::from_slice(&settings.to_json().unwrap()).unwrap();
    assert_eq!(json["disks"]["raw_ephemeral"][0]["ID"], "nvme-1");
    assert_eq!(json["disks"]["raw_ephemeral"][0]["Path"], "/dev/nvme1n1");
    assert_eq!(
        json["networks"]["n"]["routes"][0]["Destination"],
        "10.1.0.0"
    );
    // Fields Go tags `omitempty` are left out when empty.
    assert!(json["networks"]["n"].get("alias").is_none());
    assert!(json["env"]["bosh"].get("ntp").is_none());
}

#[test]
fn update_settings_merge_replaces_certs_always_and_mbus_only_when_given() {
    let mut current = UpdateSettings {
        trusted_certs: "old".into(),
        ..UpdateSettings::default()
    };
    current.mbus.urls = vec!["nats://old".into()];
    let changed = current.merge(UpdateSettings {
        trusted_certs: "new".into(),
        ..UpdateSettings::default()
    });
    assert!(!changed);
    assert_eq!(current.trusted_certs, "new");
    assert_eq!(current.mbus.urls, vec!["nats://old".to_owned()]);
    let mut newer = UpdateSettings::default();
    newer.mbus.urls = vec!["nats://new".into()];
    assert!(current.merge(newer));
    assert_eq!(current.mbus.urls, vec!["nats://new".to_owned()]);
}
