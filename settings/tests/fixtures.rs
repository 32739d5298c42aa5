//! The shared fixture documents (`tests/fixtures/shared/`): each parses with its type and holds what a
//! stemcell, a CPI or the director would put there.

use settings::agent_config::SourceOptions;
use settings::service::Origin;
use settings::source::{FileSource, SourceChain, UserData};
use settings::{AgentConfig, Dirs, Settings, SettingsService};

use crate::support::{fixture, mode, read_fixture};

#[test]
fn every_shared_fixture_parses_with_its_type() {
    let dir = fixture("shared");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("listing the shared fixtures") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .expect("a UTF-8 file name")
            .to_owned();
        if !name.ends_with(".json") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("reading a fixture");
        if name.starts_with("agent-json-") {
            let config = AgentConfig::parse(&bytes).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert!(
                !config.infrastructure.settings.sources.is_empty(),
                "{name} lists no source"
            );
        } else if name == "settings-sample.json" {
            let settings = Settings::parse(&bytes).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert!(!settings.agent_id.is_empty(), "{name} has no agent_id");
        } else if name == "http-metadata-user-data-registry.json" {
            UserData::parse(&bytes, &name).unwrap_or_else(|err| panic!("{name}: {err}"));
        } else {
            panic!("{name}: unknown shared fixture; give it a type in this test");
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "agent-json-config-drive-source.json",
            "agent-json-http-source.json",
            "http-metadata-user-data-registry.json",
            "settings-sample.json",
        ]
    );
}

#[test]
fn config_drive_agent_json_lists_both_labels_and_ignores_legacy_registry_keys() {
    let config =
        AgentConfig::parse(&read_fixture("shared/agent-json-config-drive-source.json")).unwrap();
    let linux = &config.platform.linux;
    assert!(linux.use_default_tmp_dir);
    assert!(linux.use_preformatted_persistent_disk);
    assert!(!linux.bind_mount_persistent_disk);
    assert_eq!(linux.device_path_resolution_type, "virtio");

    let [SourceOptions::ConfigDrive(drive)] = config.infrastructure.settings.sources.as_slice()
    else {
        panic!(
            "expected one ConfigDrive source: {:?}",
            config.infrastructure.settings.sources
        );
    };
    assert_eq!(
        drive.disk_paths,
        ["/dev/disk/by-label/CONFIG-2", "/dev/disk/by-label/config-2"]
    );
    assert_eq!(drive.meta_data_path, "ec2/latest/meta-data.json");
    assert_eq!(drive.user_data_path, "ec2/latest/user-data.json");

    // UseRegistry and UseServerName are read by nothing: they do not survive re-encoding.
    let reencoded = serde_json::to_string(&config).unwrap();
    assert!(!reencoded.contains("UseRegistry"), "{reencoded}");
    assert!(!reencoded.contains("UseServerName"), "{reencoded}");
}

#[test]
fn http_agent_json_has_the_metadata_uri_and_no_paths() {
    let config = AgentConfig::parse(&read_fixture("shared/agent-json-http-source.json")).unwrap();
    assert!(config.platform.linux.create_partition_if_no_ephemeral_disk);
    assert_eq!(config.platform.linux.device_path_resolution_type, "virtio");
    let [SourceOptions::Http(http)] = config.infrastructure.settings.sources.as_slice() else {
        panic!(
            "expected one HTTP source: {:?}",
            config.infrastructure.settings.sources
        );
    };
    assert_eq!(http.uri, "http://10.234.228.142");
    assert!(http.headers.is_empty());
    assert_eq!(http.user_data_path, "");
    assert_eq!(http.token_path, "");
}

#[test]
fn sample_settings_take_mbus_and_blobstore_from_env_bosh() {
    let settings = Settings::parse(&read_fixture("shared/settings-sample.json")).unwrap();
    assert_eq!(settings.agent_id, "agent-xxxxx");
    assert_eq!(
        settings.env.bosh.mbus.urls,
        ["nats://nats:nats-password@yy.yy.yyy:4222"]
    );
    assert_eq!(
        settings.mbus_url(),
        "nats://nats:nats-password@yy.yy.yyy:4222"
    );
    assert_eq!(settings.mbus_certs().ca, "--MBUS CA--");

    // The top-level blobstore is empty; env.bosh.blobstores[0] wins.
    assert_eq!(settings.blobstore.provider, "");
    let blobstore = settings.blobstore();
    assert_eq!(blobstore.provider, "local");
    assert_eq!(
        blobstore.options["blobstore_path"],
        "/var/vcap/micro_bosh/data/cache"
    );

    let bosh = &settings.env.bosh;
    assert_eq!(bosh.swap_size, Some(8192));
    assert!(bosh.keep_root_password);
    assert_eq!(bosh.password, "*");
    assert_eq!(bosh.parallel(), 1);
    assert_eq!(bosh.authorized_keys, ["--AUTHORIZED KEY--"]);
    // env.bosh.ntp is present and empty, so it wins over the top-level list.
    assert_eq!(bosh.ntp, Some(Vec::new()));
    assert!(settings.ntp_servers().is_empty());

    assert_eq!(settings.ephemeral_disk_settings().path, "/dev/sdb");
    assert_eq!(settings.disks.system, "/dev/xvda");
    assert!(settings.raw_ephemeral_disk_settings().is_empty());
    let (name, network) = settings.networks.default_network_for("gateway").unwrap();
    assert_eq!(name, "default");
    assert_eq!(network.gateway, "10.0.1.1");
    assert!(network.is_dhcp(), "use_dhcp is set");
    assert_eq!(settings.vm.name, "vm-yyyy");
}

#[test]
fn registry_user_data_names_the_server_the_registry_and_its_dns() {
    let user_data = UserData::parse(
        &read_fixture("shared/http-metadata-user-data-registry.json"),
        "fixture",
    )
    .unwrap();
    assert_eq!(user_data.settings.agent_id, "");
    assert_eq!(user_data.server_name, "vm-384sd4-r7re9e");
    assert_eq!(
        user_data.registry_endpoint(),
        Some("http://192.168.0.255:8080/client/api")
    );
    assert_eq!(user_data.dns_nameservers, ["10.234.50.180"]);
}

#[tokio::test]
async fn sample_settings_round_trip_through_the_service_cache() {
    let base = tempfile::tempdir().unwrap();
    let dirs = Dirs::new(base.path());
    let source = FileSource::new(fixture("shared/settings-sample.json"));
    let service = SettingsService::new(dirs.clone(), SourceChain::new(vec![Box::new(source)]));

    let loaded = service.load().await.unwrap();
    assert!(
        matches!(&loaded.origin, Origin::Source(what) if what.contains("settings-sample.json")),
        "{:?}",
        loaded.origin
    );

    let expected = Settings::parse(&read_fixture("shared/settings-sample.json")).unwrap();
    assert_eq!(service.settings(), expected);

    let cache = dirs.settings_file(false);
    assert_eq!(cache, base.path().join("bosh/settings.json"));
    assert_eq!(mode(&cache), 0o600);
    let cached = Settings::parse(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(cached, expected);
}

/// The re-encoded sample is what the Go agent writes to `settings.json`: its field names (JSON tags,
/// Go names for untagged structs such as `raw_ephemeral` entries), its field order, and `omitempty`.
/// Refresh the golden file with `UPDATE_EXPECT=1 cargo test -p settings`.
#[test]
fn sample_settings_re_encode_as_the_go_agent_writes_them() {
    let mut settings = Settings::parse(&read_fixture("shared/settings-sample.json")).unwrap();
    settings.disks.raw_ephemeral = vec![settings::model::DiskSettings {
        id: "raw-0".into(),
        path: "/dev/nvme1n1".into(),
        ..Default::default()
    }];
    let encoded = String::from_utf8(settings.to_json().unwrap()).unwrap() + "\n";
    let golden = fixture("golden/settings-sample.reencoded.json");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&golden, &encoded).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        encoded, expected,
        "re-encoding changed; if that is intended, refresh with UPDATE_EXPECT=1"
    );
}
