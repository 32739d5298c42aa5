//! What `apply` leaves behind for `get_state`, heartbeats and jobs, as `agent/action/apply.go` and
//! `agent/applier/applyspec/concrete_v1_service.go` (`Set`) write it:
//! * `bosh/spec.json`: the applied spec, with only the keys [`ApplySpec`] keeps;
//! * `instance/id`, `instance/az`, `instance/name`, `instance/deployment`: one value each, no
//!   newline, mode 0644, in `instance/` (mode 0755), for job scripts to read.
//!
//! Every file is written atomically (temporary file, fsync, rename). Go writes them in place, and
//! writes `spec.json` with mode 0644; ours is 0600, like the agent's other state files, since package
//! `blobstore_headers` may carry encryption keys.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use settings::Dirs;
use settings::atomic_file;

use crate::apply_spec::ApplySpec;

/// Mode of `bosh/spec.json`.
pub const SPEC_FILE_MODE: u32 = 0o600;

/// Mode of the files in `instance/` (`userInstanceFilePermissions`).
pub const INSTANCE_FILE_MODE: u32 = 0o644;

/// Mode of `instance/` (`userBaseDirPermissions`).
pub const INSTANCE_DIR_MODE: u32 = 0o755;

/// Why the applied spec could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a file, or setting the mode of `instance/`, failed.
    #[error("writing {}", .path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Writes `spec` to `bosh/spec.json`, atomically (blocking).
pub fn write_spec(dirs: &Dirs, spec: &ApplySpec) -> Result<(), Error> {
    let path = dirs.spec_file();
    let json = serde_json::to_vec(spec).map_err(|err| Error::Write {
        path: path.clone(),
        source: io::Error::other(err),
    })?;
    atomic_file::write(&path, &json, SPEC_FILE_MODE).map_err(|source| Error::Write { path, source })
}

/// Writes `instance/{id,az,name,deployment}` from `spec` (blocking).
pub fn write_instance_files(dirs: &Dirs, spec: &ApplySpec) -> Result<(), Error> {
    let dir = dirs.instance_dir();
    let fields = [
        ("id", &spec.id),
        ("az", &spec.az),
        ("name", &spec.name),
        ("deployment", &spec.deployment),
    ];
    for (name, value) in fields {
        let path = dir.join(name);
        atomic_file::write(&path, value.as_bytes(), INSTANCE_FILE_MODE)
            .map_err(|source| Error::Write { path, source })?;
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(INSTANCE_DIR_MODE))
        .map_err(|source| Error::Write { path: dir, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_and_instance_files_are_written_with_their_modes() {
        let base = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(base.path());
        let spec = ApplySpec {
            id: "uuid-1".into(),
            az: "z1".into(),
            name: "web".into(),
            deployment: "cf".into(),
            ..ApplySpec::default()
        };
        write_spec(&dirs, &spec).unwrap();
        write_instance_files(&dirs, &spec).unwrap();
        write_instance_files(&dirs, &spec).unwrap();

        assert_eq!(ApplySpec::read(&dirs.spec_file()).unwrap(), spec);
        let mode = |path: PathBuf| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dirs.spec_file()), 0o600);
        assert_eq!(mode(dirs.instance_dir()), 0o755);
        for (name, value) in [
            ("id", "uuid-1"),
            ("az", "z1"),
            ("name", "web"),
            ("deployment", "cf"),
        ] {
            let path = dirs.instance_dir().join(name);
            assert_eq!(fs::read_to_string(&path).unwrap(), value);
            assert_eq!(mode(path), 0o644);
        }
        assert_eq!(fs::read_dir(dirs.instance_dir()).unwrap().count(), 4);
    }
}
