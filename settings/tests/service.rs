//! The settings service on a temp base dir: the cache is written atomically with mode 0600, used when
//! the sources fail, never replaced by a bad document, and never overwritten when it is itself bad;
//! update settings and persistent disk hints are laid over the settings; the chain pins its source.

use std::path::{Path, PathBuf};

use settings::model::{DiskSettings, Mbus, UpdateSettings};
use settings::service::{Error, Origin};
use settings::source::{FileSource, Source, SourceChain, error_chain};
use settings::{Dirs, Settings, SettingsService};
use tempfile::TempDir;

use crate::support::{mode, settings_json};

/// A base dir with one settings file the service's `FileSource` reads.
struct Fixture {
    base: TempDir,
    dirs: Dirs,
    source_file: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path().join("vcap"));
        let source_file = base.path().join("source-settings.json");
        Fixture {
            base,
            dirs,
            source_file,
        }
    }

    /// A fresh service (a fresh agent process) reading `source_file`.
    fn service(&self) -> SettingsService {
        let source = FileSource::new(&self.source_file);
        SettingsService::new(self.dirs.clone(), SourceChain::new(vec![Box::new(source)]))
    }

    fn write_source(&self, contents: &str) {
        std::fs::write(&self.source_file, contents).unwrap();
    }

    fn remove_source(&self) {
        std::fs::remove_file(&self.source_file).unwrap();
    }

    fn cache(&self) -> PathBuf {
        self.dirs.settings_file(false)
    }

    fn cache_bytes(&self) -> Vec<u8> {
        std::fs::read(self.cache()).unwrap()
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn loading_writes_the_cache_with_mode_0600_and_no_temp_files() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-1"));
    let service = fx.service();

    let loaded = service.load().await.unwrap();

    assert_eq!(
        loaded.origin,
        Origin::Source(format!("File {}", fx.source_file.display()))
    );
    assert_eq!(service.settings().agent_id, "agent-1");
    assert_eq!(fx.cache(), fx.base.path().join("vcap/bosh/settings.json"));
    assert_eq!(mode(&fx.cache()), 0o600);
    assert_eq!(
        Settings::parse(&fx.cache_bytes()).unwrap(),
        Settings::parse(settings_json("agent-1").as_bytes()).unwrap()
    );
    assert_eq!(names_in(&fx.dirs.bosh_dir()), ["settings.json"]);
}

#[tokio::test]
async fn a_new_answer_replaces_the_cache() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-old"));
    fx.service().load().await.unwrap();
    fx.write_source(&settings_json("agent-new"));

    fx.service().load().await.unwrap();

    assert_eq!(
        Settings::parse(&fx.cache_bytes()).unwrap().agent_id,
        "agent-new"
    );
    assert_eq!(mode(&fx.cache()), 0o600);
    assert_eq!(names_in(&fx.dirs.bosh_dir()), ["settings.json"]);
}

#[tokio::test]
async fn a_missing_source_falls_back_to_the_cache() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-1"));
    let first = fx.service();
    first.load().await.unwrap();
    let good = first.settings();
    fx.remove_source();

    let service = fx.service();
    let loaded = service.load().await.unwrap();

    assert_eq!(loaded.origin, Origin::Cache(fx.cache()));
    assert_eq!(loaded.attempts.len(), 1);
    assert!(
        loaded.attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("reading ")),
        "{:?}",
        loaded.attempts
    );
    assert_eq!(service.settings(), good);
}

#[tokio::test]
async fn without_source_or_cache_loading_fails_with_both_reasons() {
    let fx = Fixture::new();

    let err = fx.service().load().await.unwrap_err();

    assert!(matches!(err, Error::NoSettings { .. }), "{err:?}");
    let text = error_chain(&err);
    assert!(
        text.contains(&format!(
            "there is no cached settings file {}",
            fx.cache().display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("reading {}", fx.source_file.display())),
        "{text}"
    );
    assert!(!fx.cache().exists());
}

#[tokio::test]
async fn a_corrupt_cache_is_reported_and_left_untouched() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-1"));
    fx.service().load().await.unwrap();
    let good = fx.cache_bytes();
    let truncated = &good[..good.len() / 2];
    std::fs::write(fx.cache(), truncated).unwrap();
    fx.remove_source();

    let err = fx.service().load().await.unwrap_err();

    let text = error_chain(&err);
    assert!(text.contains("falling back to the cache failed"), "{text}");
    assert!(
        text.contains(&format!("parsing {}", fx.cache().display())),
        "{text}"
    );
    assert!(text.contains("EOF while parsing"), "{text}");
    assert!(
        text.contains(&format!("reading {}", fx.source_file.display())),
        "{text}"
    );
    assert_eq!(fx.cache_bytes(), truncated);
}

#[tokio::test]
async fn a_cache_without_agent_id_is_unusable() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.dirs.bosh_dir()).unwrap();
    std::fs::write(fx.cache(), r#"{"mbus":"nats://cached:4222"}"#).unwrap();

    let err = fx.service().load().await.unwrap_err();

    let text = error_chain(&err);
    assert!(
        text.contains("field `agent_id`: missing or empty"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_source_documents_never_replace_a_good_cache() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-good"));
    let first = fx.service();
    first.load().await.unwrap();
    let good_settings = first.settings();
    let good_bytes = fx.cache_bytes();

    let full = settings_json("agent-bad");
    let bad_documents = [
        ("truncated JSON", full[..full.len() - 3].to_owned()),
        (
            "wrong type",
            r#"{"agent_id":"agent-bad","env":{"bosh":{"swap_size":"big"}}}"#.to_owned(),
        ),
        (
            "missing agent_id",
            r#"{"mbus":"nats://bad:4222"}"#.to_owned(),
        ),
        (
            "empty agent_id",
            r#"{"agent_id":"","mbus":"nats://bad:4222"}"#.to_owned(),
        ),
    ];
    for (what, document) in bad_documents {
        fx.write_source(&document);
        let service = fx.service();

        let loaded = service
            .load()
            .await
            .unwrap_or_else(|err| panic!("{what}: {}", error_chain(&err)));

        assert_eq!(loaded.origin, Origin::Cache(fx.cache()), "{what}");
        assert_eq!(service.settings(), good_settings, "{what}");
        assert_eq!(fx.cache_bytes(), good_bytes, "{what}: the cache changed");
    }
}

#[tokio::test]
async fn source_errors_name_the_bad_field() {
    let fx = Fixture::new();
    fx.write_source(r#"{"agent_id":"agent-1","env":{"bosh":{"swap_size":"big"}}}"#);

    let err = fx.service().load().await.unwrap_err();

    let text = error_chain(&err);
    assert!(text.contains("field `env.bosh.swap_size`"), "{text}");
}

fn update_with_mbus(url: &str) -> UpdateSettings {
    UpdateSettings {
        mbus: Mbus {
            urls: vec![url.to_owned()],
            ..Mbus::default()
        },
        ..UpdateSettings::default()
    }
}

#[tokio::test]
async fn update_settings_file_is_laid_over_loaded_settings() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-1"));
    std::fs::create_dir_all(fx.dirs.bosh_dir()).unwrap();
    std::fs::write(
        fx.dirs.update_settings_file(false),
        r#"{"mbus":{"urls":["nats://updated:4222"]}}"#,
    )
    .unwrap();
    let service = fx.service();

    service.load().await.unwrap();

    let settings = service.settings();
    assert_eq!(settings.mbus_url(), "nats://updated:4222");
    assert_eq!(settings.env.bosh.mbus.urls, ["nats://agent-1.example:4222"]);
    // The cache keeps the document as the source gave it.
    let cache = String::from_utf8(fx.cache_bytes()).unwrap();
    assert!(!cache.contains("updated"), "{cache}");
}

#[tokio::test]
async fn update_settings_are_laid_over_cached_settings_too() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-1"));
    let first = fx.service();
    first.load().await.unwrap();
    first
        .save_update_settings(update_with_mbus("nats://updated:4222"))
        .unwrap();
    fx.remove_source();

    let service = fx.service();
    let loaded = service.load().await.unwrap();

    assert_eq!(loaded.origin, Origin::Cache(fx.cache()));
    assert_eq!(service.settings().mbus_url(), "nats://updated:4222");
}

#[tokio::test]
async fn saved_update_settings_take_effect_and_are_stored_with_mode_0600() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-1"));
    let service = fx.service();
    service.load().await.unwrap();
    assert_eq!(service.settings().mbus_url(), "nats://agent-1.example:4222");
    let update = update_with_mbus("nats://director-changed:4222");

    service.save_update_settings(update.clone()).unwrap();

    assert_eq!(
        service.settings().mbus_url(),
        "nats://director-changed:4222"
    );
    let path = fx.dirs.update_settings_file(false);
    assert_eq!(path, fx.base.path().join("vcap/bosh/update_settings.json"));
    assert_eq!(mode(&path), 0o600);
    let stored: UpdateSettings = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored, update);

    let restarted = fx.service();
    restarted.load().await.unwrap();
    assert_eq!(
        restarted.settings().mbus_url(),
        "nats://director-changed:4222"
    );
}

#[tokio::test]
async fn a_corrupt_update_settings_file_fails_the_load_naming_it() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-1"));
    std::fs::create_dir_all(fx.dirs.bosh_dir()).unwrap();
    std::fs::write(fx.dirs.update_settings_file(false), "{\"mbus\":").unwrap();

    let err = fx.service().load().await.unwrap_err();

    let text = error_chain(&err);
    assert!(text.contains("update_settings.json"), "{text}");
}

#[tokio::test]
async fn saved_disk_hint_is_found_by_cid() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-1"));
    let service = fx.service();
    service.load().await.unwrap();
    let hint = DiskSettings {
        id: "disk-1".into(),
        volume_id: "vol-1".into(),
        path: "/dev/sdc".into(),
        ..DiskSettings::default()
    };

    service.save_persistent_disk_settings(hint.clone()).unwrap();

    assert_eq!(service.persistent_disk_settings("disk-1").unwrap(), hint);
    assert_eq!(
        service
            .all_persistent_disk_settings()
            .unwrap()
            .into_keys()
            .collect::<Vec<_>>(),
        ["disk-1"]
    );
    let path = fx.dirs.persistent_disk_hints_file(false);
    assert_eq!(mode(&path), 0o600);
    let stored = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    assert!(
        stored.contains(r#""VolumeID":"vol-1""#),
        "Go field names: {stored}"
    );

    // Another agent process finds it too.
    let restarted = fx.service();
    restarted.load().await.unwrap();
    assert_eq!(restarted.persistent_disk_settings("disk-1").unwrap(), hint);
}

#[tokio::test]
async fn unknown_persistent_disk_has_the_go_error_text() {
    let fx = Fixture::new();
    fx.write_source(&settings_json("agent-1"));
    let service = fx.service();
    service.load().await.unwrap();

    let err = service.persistent_disk_settings("x").unwrap_err();

    assert_eq!(
        err.to_string(),
        "Persistent disk with volume id 'x' could not be found"
    );
}

#[tokio::test]
async fn hints_win_over_the_settings_disks_until_removed() {
    let fx = Fixture::new();
    fx.write_source(
        r#"{"agent_id":"agent-1","disks":{"persistent":{"disk-1":"/dev/sdz"}},
            "env":{"persistent_disk_fs":"xfs"}}"#,
    );
    let service = fx.service();
    service.load().await.unwrap();
    let from_settings = service.persistent_disk_settings("disk-1").unwrap();
    assert_eq!(from_settings.path, "/dev/sdz");
    assert_eq!(from_settings.file_system_type, "xfs");

    service
        .save_persistent_disk_settings(DiskSettings {
            id: "disk-1".into(),
            path: "/dev/sdc".into(),
            ..DiskSettings::default()
        })
        .unwrap();
    assert_eq!(
        service.persistent_disk_settings("disk-1").unwrap().path,
        "/dev/sdc"
    );

    service.remove_persistent_disk_settings("disk-1").unwrap();
    assert_eq!(
        service.persistent_disk_settings("disk-1").unwrap(),
        from_settings
    );
}

#[tokio::test]
async fn chain_pins_the_source_that_answered_first() {
    let fx = Fixture::new();
    let first = fx.base.path().join("first.json");
    let second = fx.base.path().join("second.json");
    std::fs::write(&second, settings_json("agent-second")).unwrap();
    let first_source = FileSource::new(&first);
    let second_source = FileSource::new(&second);
    let (first_name, second_name) = (first_source.describe(), second_source.describe());
    let service = SettingsService::new(
        fx.dirs.clone(),
        SourceChain::new(vec![Box::new(first_source), Box::new(second_source)]),
    );

    let loaded = service.load().await.unwrap();

    assert_eq!(loaded.origin, Origin::Source(second_name.clone()));
    let tried: Vec<_> = loaded
        .attempts
        .iter()
        .map(|a| (a.source.as_str(), a.error.is_some()))
        .collect();
    assert_eq!(
        tried,
        [(first_name.as_str(), true), (second_name.as_str(), false)]
    );

    // Now only the first answers, but the chain stays with the second and falls back to the cache.
    std::fs::write(&first, settings_json("agent-first")).unwrap();
    std::fs::remove_file(&second).unwrap();

    let loaded = service.load().await.unwrap();

    assert_eq!(loaded.origin, Origin::Cache(fx.cache()));
    assert_eq!(loaded.attempts.len(), 1, "{:?}", loaded.attempts);
    assert_eq!(loaded.attempts[0].source, second_name);
    assert!(loaded.attempts[0].error.is_some());
    assert_eq!(service.settings().agent_id, "agent-second");

    let (result, attempts) = service.chain().settings_with_attempts().await;
    assert!(result.is_err());
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].source, second_name);
}

#[tokio::test]
async fn a_tmpfs_mode_cache_is_used_after_an_agent_restart() {
    // In tmpfs mode the cache lives on the settings tmpfs; a restarted agent whose source is gone
    // finds it there when there is no cache in bosh/.
    let base = tempfile::tempdir().unwrap();
    let dirs = settings::Dirs::new(base.path());
    let mut cached = settings::Settings::parse(br#"{"agent_id":"agent-tmpfs"}"#).unwrap();
    cached.env.bosh.agent.settings.tmpfs = true;
    settings::atomic_file::write(&dirs.settings_file(true), &cached.to_json().unwrap(), 0o600)
        .unwrap();
    let chain = settings::source::SourceChain::new(vec![Box::new(
        settings::source::FileSource::new(base.path().join("gone.json")),
    )]);
    let service = settings::SettingsService::new(dirs.clone(), chain);
    let loaded = service.load().await.unwrap();
    assert_eq!(
        loaded.origin,
        settings::service::Origin::Cache(dirs.settings_file(true))
    );
    assert_eq!(service.settings().agent_id, "agent-tmpfs");
}

#[tokio::test]
async fn tmpfs_mode_mounts_the_settings_tmpfs_before_writing_and_without_a_mounter_writes_nothing()
{
    let fx = Fixture::new();
    fx.write_source(
        r#"{"agent_id":"agent-tmpfs","env":{"bosh":{"agent":{"settings":{"tmpfs":true}}}}}"#,
    );
    // No mounter: the secrets are not written to disk, and loading fails naming the tmpfs.
    let err = fx.service().load().await.unwrap_err();
    assert!(
        matches!(&err, Error::Tmpfs { dir, .. } if *dir == fx.dirs.bosh_settings_dir()),
        "{}",
        error_chain(&err)
    );
    assert!(!fx.dirs.settings_file(true).exists());
    assert!(!fx.dirs.settings_file(false).exists());

    let mounter = std::sync::Arc::new(crate::support::mounter::FakeMounter::new());
    let service = fx.service().with_tmpfs_mounter(mounter.clone());
    service.load().await.unwrap();
    assert_eq!(
        mounter.events(),
        [crate::support::mounter::Event::Tmpfs(
            fx.dirs.bosh_settings_dir()
        )]
    );
    assert_eq!(mode(&fx.dirs.settings_file(true)), 0o600);
    assert!(!fx.dirs.settings_file(false).exists());
}
