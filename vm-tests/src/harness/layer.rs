//! The test layer: a qcow2 image backed on a stemcell's `root.img` that adds a root shell on the
//! virtio console (`backdoor.service`, as the NixOS test driver's backdoor) and nothing else. The
//! stemcell itself never has it; the QEMU CPI with `test_shell: true` backs each VM's root disk on
//! `test-layer.qcow2` next to `root.img`.
//!
//! Without nbd the layer is made on a sparse raw copy: `qemu-img convert -O raw`, the files written
//! into the root filesystem with `debugfs -w` at the root partition's offset (read from `sfdisk
//! --json`), then an overlay on that copy rebased onto `root.img` (`qemu-img rebase`, safe mode)
//! keeps only the clusters that differ. The layer is
//! rebuilt only when `root.img` changes (a stamp file records its size and modification time), and
//! an optional cache dir keeps layers across runs keyed by the sha256 of `root.img`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::Digest as _;

/// The layer's file name, next to `root.img` (the QEMU CPI's contract).
pub const LAYER_FILE: &str = "test-layer.qcow2";

/// The unit that runs the shell.
pub const BACKDOOR_UNIT: &str = "backdoor.service";

/// The script the unit runs.
pub const BACKDOOR_SCRIPT_PATH: &str = "/usr/local/sbin/vm-tests-backdoor";

/// What the shell prints on the serial console when it starts.
pub const READY_TEXT: &str = "vm-tests backdoor: root shell on hvc0";

/// `backdoor.service`: started early (no default dependencies) once `/dev/hvc0` exists, restarted
/// when the shell exits.
pub const BACKDOOR_UNIT_TEXT: &str = "\
# Added by the vm-tests test layer; never part of a stemcell.
[Unit]
Description=vm-tests root shell on /dev/hvc0
DefaultDependencies=no
Requires=dev-hvc0.device
After=dev-hvc0.device

[Service]
ExecStart=/usr/local/sbin/vm-tests-backdoor
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
";

/// The shell: the console in raw mode without echo, then bash reading commands from it as a
/// script (bash is not interactive, so no prompt, job control or line editing gets in the way).
pub const BACKDOOR_SCRIPT_TEXT: &str = "\
#!/bin/bash
# Added by the vm-tests test layer; never part of a stemcell.
exec </dev/hvc0 >/dev/hvc0 2>/dev/ttyS0
stty raw -echo
export HOME=/root USER=root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd /root || cd /
echo 'vm-tests backdoor: root shell on hvc0' >&2
exec /bin/bash --norc --noprofile /dev/hvc0
";

/// Symlinks the layer adds: the unit's wants link, and a mask for the serial getty that systemd's
/// getty generator would otherwise start on the same console.
pub const SYMLINKS: &[(&str, &str)] = &[
    (
        "/etc/systemd/system/multi-user.target.wants/backdoor.service",
        "/etc/systemd/system/backdoor.service",
    ),
    ("/etc/systemd/system/serial-getty@hvc0.service", "/dev/null"),
];

/// Makes `test-layer.qcow2` next to `root_img` unless an up-to-date one is there or in
/// `cache_dir`; returns its path.
pub fn ensure(root_img: &Path, cache_dir: Option<&Path>) -> Result<PathBuf> {
    let dir = root_img
        .parent()
        .with_context(|| format!("{} has no parent directory", root_img.display()))?;
    let layer = dir.join(LAYER_FILE);
    let stamp_path = dir.join(format!("{LAYER_FILE}.source"));
    let stamp = source_stamp(root_img)?;
    if layer.exists() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(layer);
    }
    let cached = match cache_dir {
        Some(cache_dir) => Some(cache_dir.join(format!("{}.qcow2", cache_key(root_img)?))),
        None => None,
    };
    match &cached {
        // The cached layer names its backing file relatively (`root.img`), so a copy next to
        // another copy of the same root.img is valid as is.
        Some(cached) if cached.exists() => {
            std::fs::copy(cached, &layer)
                .with_context(|| format!("copying {} to {}", cached.display(), layer.display()))?;
        }
        _ => build(root_img, &layer)
            .with_context(|| format!("making the test layer for {}", root_img.display()))?,
    }
    if let Some(cached) = &cached
        && !cached.exists()
    {
        let cache_dir = cached.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("creating {}", cache_dir.display()))?;
        // A name of its own: parallel tests may cache the same layer at once (the rename is atomic).
        let partial = cached.with_extension(format!(
            "partial-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::copy(&layer, &partial)
            .and_then(|_| std::fs::rename(&partial, cached))
            .with_context(|| format!("caching the test layer as {}", cached.display()))?;
    }
    std::fs::write(&stamp_path, &stamp)
        .with_context(|| format!("writing {}", stamp_path.display()))?;
    Ok(layer)
}

/// The `debugfs -w -f` script that adds the shell: `files` are (host file, guest path, mode)
/// written in that order, then [`SYMLINKS`].
pub fn debugfs_script(files: &[(&Path, &str, u32)]) -> String {
    let mut script = String::new();
    for (host, guest, mode) in files {
        let (dir, name) = guest.rsplit_once('/').unwrap_or(("", guest));
        let dir = if dir.is_empty() { "/" } else { dir };
        script.push_str(&format!("cd {dir}\n"));
        script.push_str(&format!("rm {name}\n"));
        script.push_str(&format!("write {} {name}\n", host.display()));
        script.push_str(&format!(
            "set_inode_field {guest} mode 0{:o}\n",
            0o100000 | mode
        ));
        script.push_str(&format!("set_inode_field {guest} uid 0\n"));
        script.push_str(&format!("set_inode_field {guest} gid 0\n"));
    }
    for (link, target) in SYMLINKS {
        script.push_str(&format!("rm {link}\n"));
        script.push_str(&format!("symlink {link} {target}\n"));
    }
    script
}

/// The byte offset of the root partition (the bootable one, else the first) from `sfdisk --json`.
pub fn root_partition_offset(sfdisk_json: &str) -> Result<u64> {
    let table: serde_json::Value =
        serde_json::from_str(sfdisk_json).context("sfdisk --json printed no JSON")?;
    let table = &table["partitiontable"];
    let sector_size = table["sectorsize"].as_u64().unwrap_or(512);
    let partitions = table["partitions"]
        .as_array()
        .filter(|partitions| !partitions.is_empty())
        .context("the image has no partitions")?;
    let root = partitions
        .iter()
        .find(|partition| partition["bootable"].as_bool() == Some(true))
        .unwrap_or(&partitions[0]);
    let start = root["start"]
        .as_u64()
        .context("the root partition has no start sector")?;
    Ok(start * sector_size)
}

fn build(root_img: &Path, layer: &Path) -> Result<()> {
    let dir = root_img.parent().unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".test-layer-")
        .tempdir_in(dir)
        .with_context(|| format!("creating a work dir in {}", dir.display()))?;
    let raw = work.path().join("root.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(root_img)
        .arg(&raw))?;
    let table = run(Command::new("sfdisk").arg("--json").arg(&raw))?;
    let offset = root_partition_offset(&table)
        .with_context(|| format!("reading the partition table of {}", root_img.display()))?;
    let unit = work.path().join(BACKDOOR_UNIT);
    let script = work.path().join("vm-tests-backdoor");
    std::fs::write(&unit, BACKDOOR_UNIT_TEXT).context("writing the backdoor unit")?;
    std::fs::write(&script, BACKDOOR_SCRIPT_TEXT).context("writing the backdoor script")?;
    let files = [
        (
            unit.as_path(),
            "/etc/systemd/system/backdoor.service",
            0o644,
        ),
        (script.as_path(), BACKDOOR_SCRIPT_PATH, 0o755),
    ];
    let commands = work.path().join("debugfs.cmds");
    std::fs::write(&commands, debugfs_script(&files)).context("writing the debugfs script")?;
    let device = format!("{}?offset={offset}", raw.display());
    run(Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&commands)
        .arg(&device))?;
    // debugfs exits 0 even when a command failed: read back what it wrote.
    for (host, guest, _) in &files {
        let written = run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("cat {guest}"))
            .arg(&device))?;
        let expected = std::fs::read_to_string(host).context("reading back a layer file")?;
        if written != expected {
            bail!("debugfs did not write {guest} into {}", root_img.display());
        }
    }
    for (link, target) in SYMLINKS {
        let stat = run(Command::new("debugfs")
            .arg("-R")
            .arg(format!("stat {link}"))
            .arg(&device))?;
        if !stat.contains(&format!("Fast link dest: \"{target}\"")) {
            bail!(
                "debugfs did not link {link} to {target} in {}",
                root_img.display()
            );
        }
    }
    // Only the clusters that differ from root.img go into the layer: an empty overlay on the
    // modified raw copy, rebased in qemu-img's safe mode onto root.img, receives exactly the
    // clusters where the two differ. Its backing file is named relatively so the layer stays valid
    // next to any copy of root.img; qemu-img resolves it from the layer's directory, so the partial
    // layer is written next to root.img.
    let partial = dir.join(format!(".{LAYER_FILE}.partial"));
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&raw)
        .arg(&partial))?;
    run(Command::new("qemu-img")
        .current_dir(dir)
        .args([
            "rebase", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "root.img",
        ])
        .arg(&partial))?;
    std::fs::rename(&partial, layer)
        .with_context(|| format!("moving the test layer to {}", layer.display()))?;
    Ok(())
}

/// Runs `command`; its stdout, or an error with its stderr.
fn run(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `<size> <mtime ns> <layer version>`: changes when root.img or the layer's content changes.
fn source_stamp(root_img: &Path) -> Result<String> {
    let metadata =
        std::fs::metadata(root_img).with_context(|| format!("reading {}", root_img.display()))?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    Ok(format!(
        "{} {modified} {}\n",
        metadata.len(),
        layer_version()
    ))
}

/// The sha256 of root.img and the layer's version, hex.
fn cache_key(root_img: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(root_img).with_context(|| format!("opening {}", root_img.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", root_img.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    hasher.update(layer_version().as_bytes());
    Ok(hex(&hasher.finalize()))
}

/// A digest of what the layer adds, so a changed unit or script rebuilds cached layers.
fn layer_version() -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(BACKDOOR_UNIT_TEXT);
    hasher.update(BACKDOOR_SCRIPT_TEXT);
    for (link, target) in SYMLINKS {
        hasher.update(link);
        hasher.update(target);
    }
    hex(&hasher.finalize()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debugfs_script_writes_files_with_modes_then_links() {
        let script = debugfs_script(&[
            (
                Path::new("/w/backdoor.service"),
                "/etc/systemd/system/backdoor.service",
                0o644,
            ),
            (
                Path::new("/w/vm-tests-backdoor"),
                "/usr/local/sbin/vm-tests-backdoor",
                0o755,
            ),
        ]);
        assert_eq!(
            script,
            "cd /etc/systemd/system\n\
             rm backdoor.service\n\
             write /w/backdoor.service backdoor.service\n\
             set_inode_field /etc/systemd/system/backdoor.service mode 0100644\n\
             set_inode_field /etc/systemd/system/backdoor.service uid 0\n\
             set_inode_field /etc/systemd/system/backdoor.service gid 0\n\
             cd /usr/local/sbin\n\
             rm vm-tests-backdoor\n\
             write /w/vm-tests-backdoor vm-tests-backdoor\n\
             set_inode_field /usr/local/sbin/vm-tests-backdoor mode 0100755\n\
             set_inode_field /usr/local/sbin/vm-tests-backdoor uid 0\n\
             set_inode_field /usr/local/sbin/vm-tests-backdoor gid 0\n\
             rm /etc/systemd/system/multi-user.target.wants/backdoor.service\n\
             symlink /etc/systemd/system/multi-user.target.wants/backdoor.service /etc/systemd/system/backdoor.service\n\
             rm /etc/systemd/system/serial-getty@hvc0.service\n\
             symlink /etc/systemd/system/serial-getty@hvc0.service /dev/null\n"
        );
    }

    #[test]
    fn root_partition_is_the_bootable_one() {
        let json = r#"{"partitiontable": {"label": "dos", "unit": "sectors", "sectorsize": 512,
            "partitions": [{"node": "d1", "start": 63, "size": 10, "type": "82"},
                           {"node": "d2", "start": 2048, "size": 99, "type": "83", "bootable": true}]}}"#;
        assert_eq!(root_partition_offset(json).unwrap(), 1_048_576);
        let json = r#"{"partitiontable": {"sectorsize": 4096, "partitions": [{"start": 256}]}}"#;
        assert_eq!(root_partition_offset(json).unwrap(), 1_048_576);
    }

    #[test]
    fn an_image_without_partitions_is_an_error() {
        let err = root_partition_offset(r#"{"partitiontable": {"partitions": []}}"#).unwrap_err();
        assert_eq!(err.to_string(), "the image has no partitions");
        assert!(root_partition_offset("").is_err());
    }

    #[test]
    fn the_unit_starts_the_script() {
        assert!(BACKDOOR_UNIT_TEXT.contains(&format!("ExecStart={BACKDOOR_SCRIPT_PATH}\n")));
        assert!(BACKDOOR_SCRIPT_TEXT.contains(READY_TEXT));
    }

    /// Runs `command` in a test, panicking with its stderr.
    fn sh(command: &mut Command) -> String {
        run(command).unwrap()
    }

    /// A small stemcell-shaped disk: MBR, one bootable partition at 1 MiB, ext4 with the dirs
    /// systemd has, as qcow2.
    fn small_root_img(dir: &Path) -> PathBuf {
        let raw = dir.join("disk.raw");
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("etc/systemd/system/multi-user.target.wants")).unwrap();
        std::fs::create_dir_all(tree.join("usr/local/sbin")).unwrap();
        std::fs::write(tree.join("etc/hostname"), "stemcell\n").unwrap();
        std::fs::File::create(&raw)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let mut sfdisk = Command::new("sfdisk")
            .args(["-q"])
            .arg(&raw)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        sfdisk
            .stdin
            .take()
            .unwrap()
            .write_all(b"start=2048, type=83, bootable\n")
            .unwrap();
        assert!(sfdisk.wait().unwrap().success());
        sh(Command::new("mkfs.ext4")
            .args(["-q", "-E", "offset=1048576", "-d"])
            .arg(&tree)
            .arg(&raw)
            .arg("63M"));
        let root_img = dir.join("root.img");
        sh(Command::new("qemu-img")
            .args(["convert", "-O", "qcow2"])
            .arg(&raw)
            .arg(&root_img));
        std::fs::remove_file(&raw).unwrap();
        root_img
    }

    #[test]
    fn layer_adds_the_shell_on_top_of_root_img_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let stemcell = dir.path().join("stemcell");
        std::fs::create_dir(&stemcell).unwrap();
        let root_img = small_root_img(&stemcell);
        let cache = dir.path().join("cache");
        let layer = ensure(&root_img, Some(&cache)).unwrap();
        assert_eq!(layer, stemcell.join(LAYER_FILE));
        let info = sh(Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&layer));
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["backing-filename"], "root.img");
        assert_eq!(info["backing-filename-format"], "qcow2");
        // Only the changed clusters: far less than the 63 MiB filesystem.
        let layer_size = std::fs::metadata(&layer).unwrap().len();
        assert!(layer_size < 4 << 20, "the layer holds {layer_size} bytes");

        // Flatten the layer and read the files back.
        let flat = dir.path().join("flat.raw");
        sh(Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(&layer)
            .arg(&flat));
        let device = format!("{}?offset=1048576", flat.display());
        let cat = |path: &str| {
            sh(Command::new("debugfs")
                .arg("-R")
                .arg(format!("cat {path}"))
                .arg(&device))
        };
        assert_eq!(
            cat("/etc/systemd/system/backdoor.service"),
            BACKDOOR_UNIT_TEXT
        );
        assert_eq!(cat(BACKDOOR_SCRIPT_PATH), BACKDOOR_SCRIPT_TEXT);
        assert_eq!(cat("/etc/hostname"), "stemcell\n");
        let stat = sh(Command::new("debugfs")
            .arg("-R")
            .arg(format!("stat {BACKDOOR_SCRIPT_PATH}"))
            .arg(&device));
        assert!(stat.contains("Mode:  0755"), "{stat}");
        let fsck = Command::new("e2fsck")
            .arg("-fn")
            .arg(&device)
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );

        // Unchanged root.img: the layer is kept; a copy elsewhere comes from the cache.
        let built = std::fs::metadata(&layer).unwrap().modified().unwrap();
        assert_eq!(ensure(&root_img, Some(&cache)).unwrap(), layer);
        assert_eq!(
            std::fs::metadata(&layer).unwrap().modified().unwrap(),
            built
        );
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::copy(&root_img, other.join("root.img")).unwrap();
        let copied = ensure(&other.join("root.img"), Some(&cache)).unwrap();
        assert_eq!(
            std::fs::read(&copied).unwrap(),
            std::fs::read(&layer).unwrap()
        );
    }

    #[test]
    fn a_root_img_that_is_not_a_disk_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let root_img = dir.path().join("root.img");
        std::fs::write(&root_img, "not a disk").unwrap();
        let err = ensure(&root_img, None).unwrap_err();
        assert!(format!("{err:#}").contains("root.img"), "{err:#}");
        assert!(!dir.path().join(LAYER_FILE).exists());
    }
}
