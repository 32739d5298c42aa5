//! Config drives and the CD-ROM: the readers on fixture trees (`tests/fixtures/config-drive/`,
//! `tests/fixtures/cdrom/`), and the sources through a fake mounter that checks every mount is released.

use std::sync::Arc;

use settings::AgentConfig;
use settings::agent_config::{ConfigDriveSourceOptions, SourceOptions};
use settings::source::{
    CdromSource, ConfigDrive, ConfigDriveSource, Source, SourceChain, SourceContext, error_chain,
    read_cdrom_settings,
};

use crate::support::http_server::TestServer;
use crate::support::mounter::{CDROM, Event, FakeMounter};
use crate::support::{fixture, read_fixture, retry, settings_json};

const OPENSTACK_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCopenstack bosh@openstack";
const EC2_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCec2 bosh@ec2";

fn openstack_options() -> ConfigDriveSourceOptions {
    ConfigDriveSourceOptions {
        disk_paths: vec!["/dev/disk/by-label/config-2".into()],
        meta_data_path: "openstack/latest/meta_data.json".into(),
        user_data_path: "openstack/latest/user_data".into(),
        ..ConfigDriveSourceOptions::default()
    }
}

fn ec2_options(disk_paths: &[&str]) -> ConfigDriveSourceOptions {
    ConfigDriveSourceOptions {
        disk_paths: disk_paths.iter().map(|&d| d.to_owned()).collect(),
        meta_data_path: "ec2/latest/meta-data.json".into(),
        user_data_path: "ec2/latest/user-data.json".into(),
        ..ConfigDriveSourceOptions::default()
    }
}

fn config_drive_source(
    options: &ConfigDriveSourceOptions,
    mounter: &Arc<FakeMounter>,
) -> ConfigDriveSource {
    ConfigDriveSource::new(options, mounter.clone(), retry(1))
}

#[test]
fn openstack_drive_gives_settings_first_key_and_uuid() {
    let drive =
        ConfigDrive::from_dir(&fixture("config-drive/openstack"), &openstack_options()).unwrap();

    let settings = &drive.user_data.settings;
    assert_eq!(settings.agent_id, "agent-openstack");
    assert_eq!(settings.blobstore().provider, "dav");
    assert!(settings.networks.0["default"].is_dhcp());
    assert_eq!(drive.ssh_key.as_deref(), Some(OPENSTACK_KEY));
    assert_eq!(
        drive.instance_id.as_deref(),
        Some("0d2b4c6e-8a1f-4e3b-9c5d-7f6e5d4c3b2a")
    );
    assert_eq!(drive.user_data.registry_endpoint(), None);
}

#[test]
fn ec2_drive_gives_settings_openssh_key_and_instance_id() {
    let drive = ConfigDrive::from_dir(&fixture("config-drive/ec2"), &ec2_options(&[])).unwrap();

    let settings = &drive.user_data.settings;
    assert_eq!(settings.agent_id, "agent-ec2");
    assert_eq!(
        settings.persistent_disk_settings("vol-1").map(|d| d.path),
        Some("/dev/vdc".to_owned())
    );
    assert_eq!(drive.ssh_key.as_deref(), Some(EC2_KEY));
    assert_eq!(drive.instance_id.as_deref(), Some("i-0a1b2c3d"));
}

#[test]
fn absolute_paths_in_options_stay_inside_the_drive() {
    let options = ConfigDriveSourceOptions {
        meta_data_path: "/ec2/latest/meta-data.json".into(),
        user_data_path: "/ec2/latest/user-data.json".into(),
        ..ConfigDriveSourceOptions::default()
    };
    let drive = ConfigDrive::from_dir(&fixture("config-drive/ec2"), &options).unwrap();
    assert_eq!(drive.user_data.settings.agent_id, "agent-ec2");
    assert_eq!(drive.ssh_key.as_deref(), Some(EC2_KEY));
}

#[test]
fn missing_meta_data_means_no_key_and_no_instance_id() {
    let options = ConfigDriveSourceOptions {
        meta_data_path: "ec2/latest/no-such-meta-data.json".into(),
        ..ec2_options(&[])
    };
    let drive = ConfigDrive::from_dir(&fixture("config-drive/ec2"), &options).unwrap();
    assert_eq!(drive.user_data.settings.agent_id, "agent-ec2");
    assert_eq!(drive.ssh_key, None);
    assert_eq!(drive.instance_id, None);
}

#[test]
fn missing_user_data_is_an_error_naming_the_file() {
    // The OpenStack tree has no EC2 files.
    let err =
        ConfigDrive::from_dir(&fixture("config-drive/openstack"), &ec2_options(&[])).unwrap_err();
    let text = error_chain(&err);
    assert!(text.contains("ec2/latest/user-data.json"), "{text}");
    assert!(text.starts_with("reading "), "{text}");
}

#[test]
fn cdrom_env_file_is_read_from_the_mounted_dir() {
    let settings = read_cdrom_settings(&fixture("cdrom"), "env").unwrap();
    assert_eq!(settings.agent_id, "agent-cdrom");
    assert_eq!(settings.env.bosh.swap_size, Some(0));
    assert_eq!(settings.ephemeral_disk_settings().volume_id, "1");
    assert_eq!(
        settings
            .persistent_disk_settings("disk-3f2e")
            .map(|d| d.volume_id),
        Some("2".to_owned())
    );
    assert_eq!(settings.networks.0["default"].mac, "00:50:56:aa:bb:cc");
}

#[test]
fn cdrom_without_the_file_is_an_error_naming_it() {
    let err = read_cdrom_settings(&fixture("cdrom"), "/no-such-env").unwrap_err();
    let text = error_chain(&err);
    assert!(text.contains("cdrom/no-such-env"), "{text}");
}

#[tokio::test]
async fn config_drive_source_mounts_reads_and_releases() {
    let mounter = Arc::new(FakeMounter::new().with_device(
        "/dev/disk/by-label/config-2",
        fixture("config-drive/openstack"),
    ));
    let source = config_drive_source(&openstack_options(), &mounter);

    let settings = source.settings().await.unwrap();
    let key = source.public_ssh_key().await.unwrap();

    assert_eq!(settings.agent_id, "agent-openstack");
    assert_eq!(key.as_deref(), Some(OPENSTACK_KEY));
    let device = "/dev/disk/by-label/config-2".to_owned();
    assert_eq!(
        mounter.events(),
        [
            Event::Mounted(device.clone()),
            Event::Released(device.clone()),
            Event::Mounted(device.clone()),
            Event::Released(device),
        ]
    );
}

#[tokio::test]
async fn unknown_first_device_falls_through_to_the_second() {
    let mounter = Arc::new(
        FakeMounter::new().with_device("/dev/disk/by-label/config-2", fixture("config-drive/ec2")),
    );
    let options = ec2_options(&["/dev/disk/by-label/CONFIG-2", "/dev/disk/by-label/config-2"]);

    let settings = config_drive_source(&options, &mounter)
        .settings()
        .await
        .unwrap();

    assert_eq!(settings.agent_id, "agent-ec2");
    assert_eq!(
        mounter.events(),
        [
            Event::Refused("/dev/disk/by-label/CONFIG-2".into()),
            Event::Mounted("/dev/disk/by-label/config-2".into()),
            Event::Released("/dev/disk/by-label/config-2".into()),
        ]
    );
}

#[tokio::test]
async fn a_drive_that_fails_to_read_is_released_before_the_next_is_tried() {
    // The first device holds the OpenStack layout, which lacks the EC2 files the options ask for.
    let mounter = Arc::new(
        FakeMounter::new()
            .with_device("/dev/sr0", fixture("config-drive/openstack"))
            .with_device("/dev/vdb", fixture("config-drive/ec2")),
    );
    let options = ec2_options(&["/dev/sr0", "/dev/vdb"]);

    let settings = config_drive_source(&options, &mounter)
        .settings()
        .await
        .unwrap();

    assert_eq!(settings.agent_id, "agent-ec2");
    assert_eq!(
        mounter.events(),
        [
            Event::Mounted("/dev/sr0".into()),
            Event::Released("/dev/sr0".into()),
            Event::Mounted("/dev/vdb".into()),
            Event::Released("/dev/vdb".into()),
        ]
    );
}

#[tokio::test]
async fn all_devices_failing_lists_each_device_and_releases_every_mount() {
    let mounter =
        Arc::new(FakeMounter::new().with_device("/dev/vdb", fixture("config-drive/openstack")));
    let options = ec2_options(&["/dev/disk/by-label/CONFIG-2", "/dev/vdb"]);

    let err = config_drive_source(&options, &mounter)
        .settings()
        .await
        .unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.starts_with("no config drive device could be read"),
        "{text}"
    );
    assert!(
        text.contains(
            "[/dev/disk/by-label/CONFIG-2: mounting /dev/disk/by-label/CONFIG-2: no such device"
        ),
        "{text}"
    );
    assert!(text.contains("[/dev/vdb: reading "), "{text}");
    assert!(text.contains("ec2/latest/user-data.json"), "{text}");
    mounter.assert_all_released();
    assert_eq!(
        mounter.events(),
        [
            Event::Refused("/dev/disk/by-label/CONFIG-2".into()),
            Event::Mounted("/dev/vdb".into()),
            Event::Released("/dev/vdb".into()),
        ]
    );
}

#[tokio::test]
async fn a_failing_unmount_after_a_good_read_keeps_the_settings() {
    let mounter = Arc::new(
        FakeMounter::new()
            .with_device("/dev/vdb", fixture("config-drive/ec2"))
            .failing_release(),
    );

    let settings = config_drive_source(&ec2_options(&["/dev/vdb"]), &mounter)
        .settings()
        .await
        .unwrap();

    assert_eq!(settings.agent_id, "agent-ec2");
    mounter.assert_all_released();
}

#[tokio::test]
async fn config_drive_pointing_at_a_registry_uses_the_meta_data_instance_id() {
    let registry = TestServer::start().await;
    registry.route(
        "GET",
        "/instances/i-0a1b2c3d/settings",
        [(
            200,
            serde_json::json!({ "settings": settings_json("agent-drive-registry") }).to_string(),
        )],
    );
    let drive = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(drive.path().join("ec2/latest")).unwrap();
    std::fs::write(
        drive.path().join("ec2/latest/meta-data.json"),
        read_fixture("config-drive/ec2/ec2/latest/meta-data.json"),
    )
    .unwrap();
    std::fs::write(
        drive.path().join("ec2/latest/user-data.json"),
        serde_json::json!({ "registry": { "endpoint": registry.url() } }).to_string(),
    )
    .unwrap();
    let mounter = Arc::new(FakeMounter::new().with_device("/dev/vdb", drive.path()));

    let settings = config_drive_source(&ec2_options(&["/dev/vdb"]), &mounter)
        .settings()
        .await
        .unwrap();

    assert_eq!(settings.agent_id, "agent-drive-registry");
    assert_eq!(registry.requests().len(), 1);
    mounter.assert_all_released();
}

#[tokio::test]
async fn agent_json_config_drive_source_reads_through_the_chain() {
    let config =
        AgentConfig::parse(&read_fixture("shared/agent-json-config-drive-source.json")).unwrap();
    let mounter = Arc::new(
        FakeMounter::new().with_device("/dev/disk/by-label/config-2", fixture("config-drive/ec2")),
    );
    let context = SourceContext {
        mounter: mounter.clone(),
        retry: retry(1),
    };
    let chain =
        SourceChain::from_options(&config.infrastructure.settings.sources, &context).unwrap();
    assert!(matches!(
        config.infrastructure.settings.sources[0],
        SourceOptions::ConfigDrive(_)
    ));

    let settings = chain.settings().await.unwrap();
    let key = chain.public_ssh_key().await.unwrap();

    assert_eq!(settings.agent_id, "agent-ec2");
    assert_eq!(key.as_deref(), Some(EC2_KEY));
    mounter.assert_all_released();
}

#[tokio::test]
async fn cdrom_source_reads_the_env_file_and_releases_the_drive() {
    let mounter = Arc::new(FakeMounter::new().with_cdrom(fixture("cdrom")));
    let source = CdromSource::new("env", mounter.clone());

    let settings = source.settings().await.unwrap();

    assert_eq!(settings.agent_id, "agent-cdrom");
    assert_eq!(
        mounter.events(),
        [Event::Mounted(CDROM.into()), Event::Released(CDROM.into())]
    );
    assert_eq!(source.public_ssh_key().await.unwrap(), None);
}

#[tokio::test]
async fn cdrom_source_releases_the_drive_when_the_file_is_missing() {
    let mounter = Arc::new(FakeMounter::new().with_cdrom(fixture("cdrom")));

    let err = CdromSource::new("user-data", mounter.clone())
        .settings()
        .await
        .unwrap_err();

    assert!(
        error_chain(&err).contains("cdrom/user-data"),
        "{}",
        error_chain(&err)
    );
    assert_eq!(
        mounter.events(),
        [Event::Mounted(CDROM.into()), Event::Released(CDROM.into())]
    );
}

#[tokio::test]
async fn cdrom_source_without_a_disc_is_a_mount_error() {
    let mounter = Arc::new(FakeMounter::new());

    let err = CdromSource::new("env", mounter.clone())
        .settings()
        .await
        .unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.starts_with("mounting CD-ROM: no such device cdrom"),
        "{text}"
    );
    assert_eq!(mounter.events(), [Event::Refused(CDROM.into())]);
}
