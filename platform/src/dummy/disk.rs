//! Persistent, dynamic and associated disks on the dummy platform (`platform/dummy_platform.go`
//! `MountPersistentDisk`, `UnmountPersistentDisk`, `MigratePersistentDisk`, `IsMountPoint`,
//! `IsPersistentDiskMounted`, `AssociateDisk`, `SetupDynamicDisk`, `CleanupDynamicDisk`).
//!
//! A mount is a [`MountRecord`] in `bosh/mounts.json` plus the mount point directory; nothing is
//! mounted for real. The rules follow the Linux platform: a disk already mounted is left alone, a
//! second disk goes on the migration target, and a migration leaves the new disk on the old mount
//! point.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use settings::model::DiskSettings;

use crate::disk::{Error, Result};
use crate::dummy::{
    DISK_ASSOCIATIONS_FILE, DISK_MIGRATIONS_FILE, DYNAMIC_DISKS_FILE, DummyPlatform,
    FORMATTED_DISKS_FILE, MOUNTS_FILE, state,
};
use crate::name;

/// One mounted disk in `bosh/mounts.json` (Go's `mount`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountRecord {
    /// The mount point.
    #[serde(rename = "MountDir")]
    pub mount_dir: String,
    /// The mount options of the disk settings.
    #[serde(rename = "MountOptions")]
    pub mount_options: Vec<String>,
    /// The disk CID.
    #[serde(rename = "DiskCid")]
    pub disk_cid: String,
}

/// One disk in `bosh/formatted_disks.json` (Go's `formattedDisk`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FormattedDisk {
    /// The disk CID.
    #[serde(rename = "DiskCid")]
    pub disk_cid: String,
}

/// One migration in `bosh/disk_migrations.json` (Go's `diskMigration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskMigration {
    /// The disk the data came from.
    #[serde(rename = "FromDiskCid")]
    pub from_disk_cid: String,
    /// The disk the data went to.
    #[serde(rename = "ToDiskCid")]
    pub to_disk_cid: String,
}

/// One dynamic disk in `bosh/dummy_dynamic_disks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DynamicDisk {
    /// The disk CID.
    #[serde(rename = "DiskCid")]
    pub disk_cid: String,
}

/// Permission bits of a mount point, as the Linux platform creates it.
const MOUNT_POINT_MODE: u32 = 0o700;

impl DummyPlatform {
    pub(super) fn mount_disk(&self, disk: &DiskSettings, mount_point: &Path) -> Result<()> {
        if disk.id.is_empty() {
            return Err(Error::NoDiskCid);
        }
        self.check_inside_base_dir(mount_point)?;
        let _state = self.lock_state();
        let mounts_file = self.state_file(MOUNTS_FILE);
        let mut mounts: Vec<MountRecord> = state::read_json(&mounts_file)?;
        if mounts.iter().any(|mount| mount.disk_cid == disk.id) {
            return Ok(());
        }
        // A second disk goes where `migrate_disk` expects it (Go's `StoreMigrationDir`).
        let mount_point = if mounts.iter().any(|mount| mounted_on(mount, mount_point)) {
            self.dirs.store_migration_dir()
        } else {
            mount_point.to_owned()
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(MOUNT_POINT_MODE)
            .create(&mount_point)
            .map_err(|source| Error::CreateMountPoint {
                path: mount_point.clone(),
                source,
            })?;

        let formatted_file = self.state_file(FORMATTED_DISKS_FILE);
        let mut formatted: Vec<FormattedDisk> = state::read_json(&formatted_file)?;
        if !formatted.iter().any(|f| f.disk_cid == disk.id) {
            formatted.push(FormattedDisk {
                disk_cid: disk.id.clone(),
            });
            state::write_json(&formatted_file, &formatted)?;
        }
        mounts.push(MountRecord {
            mount_dir: mount_point.to_string_lossy().into_owned(),
            mount_options: disk.mount_options.clone(),
            disk_cid: disk.id.clone(),
        });
        state::write_bytes(&self.dirs.managed_disk_settings_file(), disk.id.as_bytes())?;
        state::write_json(&mounts_file, &mounts)?;
        Ok(())
    }

    pub(super) fn unmount_disk(&self, disk: &DiskSettings) -> Result<bool> {
        if disk.id.is_empty() {
            return Err(Error::NoDiskCid);
        }
        let _state = self.lock_state();
        let mounts_file = self.state_file(MOUNTS_FILE);
        let mut mounts: Vec<MountRecord> = state::read_json(&mounts_file)?;
        let before = mounts.len();
        mounts.retain(|mount| mount.disk_cid != disk.id);
        if mounts.len() == before {
            return Ok(false);
        }
        state::write_json(&mounts_file, &mounts)?;
        Ok(true)
    }

    pub(super) fn is_disk_mounted(&self, disk: &DiskSettings) -> Result<bool> {
        if disk.id.is_empty() {
            return Err(Error::NoDiskCid);
        }
        let mounts: Vec<MountRecord> = state::read_json(&self.state_file(MOUNTS_FILE))?;
        Ok(mounts.iter().any(|mount| mount.disk_cid == disk.id))
    }

    pub(super) fn has_mount_on(&self, path: &Path) -> Result<bool> {
        let mounts: Vec<MountRecord> = state::read_json(&self.state_file(MOUNTS_FILE))?;
        Ok(mounts.iter().any(|mount| mounted_on(mount, path)))
    }

    pub(super) fn migrate_disk(
        &self,
        from_mount_point: &Path,
        to_mount_point: &Path,
    ) -> Result<()> {
        let _state = self.lock_state();
        let mounts_file = self.state_file(MOUNTS_FILE);
        let mut mounts: Vec<MountRecord> = state::read_json(&mounts_file)?;
        // Go takes the last record on a mount point, the one mounted on top.
        let disk_on = |mount_point: &Path| {
            mounts
                .iter()
                .rev()
                .find(|mount| mounted_on(mount, mount_point))
                .map(|mount| mount.disk_cid.clone())
                .ok_or_else(|| Error::NotMounted {
                    mount_point: mount_point.to_owned(),
                })
        };
        let migration = DiskMigration {
            from_disk_cid: disk_on(from_mount_point)?,
            to_disk_cid: disk_on(to_mount_point)?,
        };
        let migrations_file = self.state_file(DISK_MIGRATIONS_FILE);
        let mut migrations: Vec<DiskMigration> = state::read_json(&migrations_file)?;
        migrations.push(migration);
        state::write_json(&migrations_file, &migrations)?;

        mounts.retain(|mount| !mounted_on(mount, from_mount_point));
        for mount in &mut mounts {
            if mounted_on(mount, to_mount_point) {
                mount.mount_dir = from_mount_point.to_string_lossy().into_owned();
            }
        }
        state::write_json(&mounts_file, &mounts)?;
        Ok(())
    }

    pub(super) fn associate(&self, disk_name: &str, _disk: &DiskSettings) -> Result<()> {
        name::check("disk name", disk_name)?;
        let _state = self.lock_state();
        let file = self.state_file(DISK_ASSOCIATIONS_FILE);
        let mut names: Vec<String> = state::read_json(&file)?;
        if !names.iter().any(|known| known == disk_name) {
            names.push(disk_name.to_owned());
            state::write_json(&file, &names)?;
        }
        Ok(())
    }

    pub(super) fn add_dynamic(&self, disk: &DiskSettings) -> Result<()> {
        name::check("disk cid", &disk.id)?;
        let _state = self.lock_state();
        let file = self.state_file(DYNAMIC_DISKS_FILE);
        let mut disks: Vec<DynamicDisk> = state::read_json(&file)?;
        if !disks.iter().any(|known| known.disk_cid == disk.id) {
            disks.push(DynamicDisk {
                disk_cid: disk.id.clone(),
            });
            state::write_json(&file, &disks)?;
        }
        Ok(())
    }

    pub(super) fn remove_dynamic(&self, disk_cid: &str) -> Result<()> {
        name::check("disk cid", disk_cid)?;
        let _state = self.lock_state();
        let file = self.state_file(DYNAMIC_DISKS_FILE);
        let mut disks: Vec<DynamicDisk> = state::read_json(&file)?;
        let before = disks.len();
        disks.retain(|known| known.disk_cid != disk_cid);
        if disks.len() != before {
            state::write_json(&file, &disks)?;
        }
        Ok(())
    }

    /// Refuses mount points that are not strictly inside the base dir: mounting creates them.
    fn check_inside_base_dir(&self, path: &Path) -> Result<()> {
        let base = self.dirs.base_dir();
        let is_inside = path.starts_with(base)
            && path != base
            && !path
                .components()
                .any(|component| component == Component::ParentDir);
        if is_inside {
            Ok(())
        } else {
            Err(Error::OutsideBaseDir {
                path: path.to_owned(),
                base: base.to_owned(),
            })
        }
    }
}

/// Whether `mount` is on `mount_point`, compared as paths (a trailing `/` does not matter).
fn mounted_on(mount: &MountRecord, mount_point: &Path) -> bool {
    Path::new(&mount.mount_dir) == mount_point
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use settings::Dirs;

    use super::*;
    use crate::Platform;

    struct Fixture {
        _base: tempfile::TempDir,
        dirs: Dirs,
        platform: DummyPlatform,
    }

    fn fixture() -> Fixture {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let platform = DummyPlatform::new(&dirs);
        Fixture {
            _base: base,
            dirs,
            platform,
        }
    }

    fn disk(cid: &str) -> DiskSettings {
        DiskSettings {
            id: cid.to_owned(),
            path: "/dev/sdc".to_owned(),
            mount_options: vec!["noatime".to_owned()],
            ..DiskSettings::default()
        }
    }

    impl Fixture {
        fn mounts(&self) -> Vec<(String, String)> {
            let mounts: Vec<MountRecord> =
                state::read_json(&self.platform.state_file(MOUNTS_FILE)).unwrap();
            mounts
                .into_iter()
                .map(|m| (m.disk_cid, m.mount_dir))
                .collect()
        }

        fn path(&self, dir: PathBuf) -> String {
            dir.to_string_lossy().into_owned()
        }

        fn file(&self, name: &str) -> String {
            std::fs::read_to_string(self.platform.state_file(name)).unwrap()
        }
    }

    #[test]
    fn mount_then_unmount() {
        let f = fixture();
        let store = f.dirs.store_dir();
        assert!(
            !f.platform
                .is_persistent_disk_mounted(&disk("vol-1"))
                .unwrap()
        );
        assert!(!f.platform.is_mount_point(&store).unwrap());

        f.platform
            .mount_persistent_disk(&disk("vol-1"), &store)
            .unwrap();
        assert!(
            f.platform
                .is_persistent_disk_mounted(&disk("vol-1"))
                .unwrap()
        );
        assert!(f.platform.is_mount_point(&store).unwrap());
        assert!(f.platform.is_mount_point(&store.join("")).unwrap());
        assert!(
            !f.platform
                .is_persistent_disk_mounted(&disk("vol-2"))
                .unwrap()
        );
        assert!(store.is_dir());
        assert_eq!(
            std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            f.file(MOUNTS_FILE),
            format!(
                r#"[{{"MountDir":"{}","MountOptions":["noatime"],"DiskCid":"vol-1"}}]"#,
                store.display()
            )
        );
        assert_eq!(f.file(FORMATTED_DISKS_FILE), r#"[{"DiskCid":"vol-1"}]"#);
        assert_eq!(
            std::fs::read_to_string(f.dirs.managed_disk_settings_file()).unwrap(),
            "vol-1"
        );

        assert!(f.platform.unmount_persistent_disk(&disk("vol-1")).unwrap());
        assert!(!f.platform.unmount_persistent_disk(&disk("vol-1")).unwrap());
        assert!(
            !f.platform
                .is_persistent_disk_mounted(&disk("vol-1"))
                .unwrap()
        );
        assert!(!f.platform.is_mount_point(&store).unwrap());
        assert_eq!(f.file(MOUNTS_FILE), "[]");
        // A formatted disk stays formatted.
        assert_eq!(f.file(FORMATTED_DISKS_FILE), r#"[{"DiskCid":"vol-1"}]"#);
    }

    #[test]
    fn mounting_a_mounted_disk_again_changes_nothing() {
        let f = fixture();
        let store = f.dirs.store_dir();
        f.platform
            .mount_persistent_disk(&disk("vol-1"), &store)
            .unwrap();
        let before = f.file(MOUNTS_FILE);
        f.platform
            .mount_persistent_disk(&disk("vol-1"), &store)
            .unwrap();
        assert_eq!(f.file(MOUNTS_FILE), before);
    }

    #[test]
    fn a_lost_mount_table_is_mounted_again() {
        // The director's suite deletes mounts.json to simulate a VM reboot.
        let f = fixture();
        let store = f.dirs.store_dir();
        f.platform
            .mount_persistent_disk(&disk("vol-1"), &store)
            .unwrap();
        std::fs::remove_file(f.platform.state_file(MOUNTS_FILE)).unwrap();
        f.platform
            .mount_persistent_disk(&disk("vol-1"), &store)
            .unwrap();
        assert_eq!(f.mounts(), vec![("vol-1".into(), f.path(store))]);
    }

    #[test]
    fn a_second_disk_goes_to_the_migration_target_and_migrates() {
        let f = fixture();
        let store = f.dirs.store_dir();
        let target = f.dirs.store_migration_dir();
        f.platform
            .mount_persistent_disk(&disk("vol-old"), &store)
            .unwrap();
        f.platform
            .mount_persistent_disk(&disk("vol-new"), &store)
            .unwrap();
        assert!(target.is_dir());
        assert_eq!(
            f.mounts(),
            vec![
                ("vol-old".into(), f.path(store.clone())),
                ("vol-new".into(), f.path(target.clone())),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(f.dirs.managed_disk_settings_file()).unwrap(),
            "vol-new"
        );

        f.platform.migrate_persistent_disk(&store, &target).unwrap();
        assert_eq!(
            f.file(DISK_MIGRATIONS_FILE),
            r#"[{"FromDiskCid":"vol-old","ToDiskCid":"vol-new"}]"#
        );
        assert_eq!(f.mounts(), vec![("vol-new".into(), f.path(store.clone()))]);
        assert!(!f.platform.is_mount_point(&target).unwrap());
        // The director unmounts the old disk afterwards; it is no longer mounted.
        assert!(
            !f.platform
                .unmount_persistent_disk(&disk("vol-old"))
                .unwrap()
        );
        assert!(
            f.platform
                .is_persistent_disk_mounted(&disk("vol-new"))
                .unwrap()
        );

        // Migrations accumulate.
        f.platform
            .mount_persistent_disk(&disk("vol-newer"), &store)
            .unwrap();
        f.platform.migrate_persistent_disk(&store, &target).unwrap();
        let migrations: Vec<DiskMigration> =
            state::read_json(&f.platform.state_file(DISK_MIGRATIONS_FILE)).unwrap();
        assert_eq!(
            migrations
                .iter()
                .map(|m| (m.from_disk_cid.as_str(), m.to_disk_cid.as_str()))
                .collect::<Vec<_>>(),
            vec![("vol-old", "vol-new"), ("vol-new", "vol-newer")]
        );
    }

    #[test]
    fn migrating_without_both_disks_changes_nothing() {
        let f = fixture();
        let store = f.dirs.store_dir();
        let target = f.dirs.store_migration_dir();
        let err = f
            .platform
            .migrate_persistent_disk(&store, &target)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no disk is mounted on {}", store.display())
        );
        f.platform
            .mount_persistent_disk(&disk("vol-old"), &store)
            .unwrap();
        let err = f
            .platform
            .migrate_persistent_disk(&store, &target)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no disk is mounted on {}", target.display())
        );
        assert!(!f.platform.state_file(DISK_MIGRATIONS_FILE).exists());
        assert_eq!(f.mounts().len(), 1);
    }

    #[test]
    fn bad_mounts_are_refused_before_any_write() {
        let f = fixture();
        let base = f.dirs.base_dir().to_owned();
        let cases: Vec<(DiskSettings, PathBuf, String)> = vec![
            (
                disk(""),
                f.dirs.store_dir(),
                "the disk settings have no disk cid".to_owned(),
            ),
            (
                disk("vol-1"),
                PathBuf::from("/mnt/store"),
                format!(
                    "mount point /mnt/store is not inside the base dir {}",
                    base.display()
                ),
            ),
            (
                disk("vol-1"),
                base.join("../escape"),
                format!(
                    "mount point {}/../escape is not inside the base dir {}",
                    base.display(),
                    base.display()
                ),
            ),
            (
                disk("vol-1"),
                base.clone(),
                format!(
                    "mount point {} is not inside the base dir {}",
                    base.display(),
                    base.display()
                ),
            ),
        ];
        for (disk, mount_point, expected) in cases {
            let err = f
                .platform
                .mount_persistent_disk(&disk, &mount_point)
                .unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
        assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0);
        assert!(matches!(
            f.platform.unmount_persistent_disk(&disk("")),
            Err(Error::NoDiskCid)
        ));
    }

    #[test]
    fn a_corrupt_mount_table_is_an_error() {
        let f = fixture();
        state::write_bytes(&f.platform.state_file(MOUNTS_FILE), b"{not json").unwrap();
        let err = f
            .platform
            .mount_persistent_disk(&disk("vol-1"), &f.dirs.store_dir())
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("decoding dummy platform state "),
            "{err}"
        );
        assert!(!f.dirs.store_dir().exists());
    }

    #[test]
    fn associations_are_recorded_once_each() {
        let f = fixture();
        f.platform
            .associate_disk("low-iops-persistent-disk-name", &disk("vol-1"))
            .unwrap();
        f.platform
            .associate_disk("high-iops-persistent-disk-name", &disk("vol-2"))
            .unwrap();
        f.platform
            .associate_disk("low-iops-persistent-disk-name", &disk("vol-1"))
            .unwrap();
        assert_eq!(
            f.file(DISK_ASSOCIATIONS_FILE),
            r#"["low-iops-persistent-disk-name","high-iops-persistent-disk-name"]"#
        );
        let err = f
            .platform
            .associate_disk("../../etc", &disk("vol-3"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "disk name '../../etc' is not a plain file name (no '/', NUL, '.' or '..')"
        );
    }

    #[test]
    fn dynamic_disks_are_added_and_removed() {
        let f = fixture();
        f.platform.add_dynamic_disk(&disk("vol-a")).unwrap();
        f.platform.add_dynamic_disk(&disk("vol-b")).unwrap();
        f.platform.add_dynamic_disk(&disk("vol-a")).unwrap();
        assert_eq!(
            f.file(DYNAMIC_DISKS_FILE),
            r#"[{"DiskCid":"vol-a"},{"DiskCid":"vol-b"}]"#
        );
        f.platform.remove_dynamic_disk("vol-a").unwrap();
        f.platform.remove_dynamic_disk("vol-unknown").unwrap();
        assert_eq!(f.file(DYNAMIC_DISKS_FILE), r#"[{"DiskCid":"vol-b"}]"#);
        for cid in ["", "..", "a/../../b"] {
            assert!(matches!(
                f.platform.add_dynamic_disk(&disk(cid)),
                Err(Error::InvalidName(_))
            ));
            assert!(matches!(
                f.platform.remove_dynamic_disk(cid),
                Err(Error::InvalidName(_))
            ));
        }
        assert_eq!(f.file(DYNAMIC_DISKS_FILE), r#"[{"DiskCid":"vol-b"}]"#);
    }
}
