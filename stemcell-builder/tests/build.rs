//! Builds a real stemcell from the real agent binary with the `stemcell-builder` CLI (as root:
//! debootstrap, chroot and a loop mount need it), with the default cache dir, then checks the
//! tarball without booting it: the layout, `stemcell.MF` and its sha1, the qcow2 `root.img`, the
//! MBR (boot code and one bootable partition at sector 2048), and the files inside the ext4 root
//! read with `debugfs` at the partition's offset. It prints the build's stage timings and sizes.
//!
//! The agent is found at `$BOSH_AGENT_BIN`, else `target/debug/bosh-agent` of this workspace
//! (`cargo build -j2 -p agent`).

// An integration test binary is its own crate: its tests are not in a `#[cfg(test)]` module.
#![allow(clippy::tests_outside_test_module)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::read::GzDecoder;
use sha1::{Digest, Sha1};
use stemcell_builder::customize;
use stemcell_builder::image;
use stemcell_builder::tarball;

fn agent_binary() -> PathBuf {
    let path = std::env::var_os("BOSH_AGENT_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/bosh-agent"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no agent binary at {}: run `cargo build -j2 -p agent` or set BOSH_AGENT_BIN",
        path.display()
    );
    path
}

fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e} (is it installed?)"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn untar_gz(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(GzDecoder::new(fs::File::open(path).unwrap()));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            // Regular entries only: CPIs unpacking `root.img` take nothing else (no GNU sparse).
            assert_eq!(
                entry.header().entry_type(),
                tar::EntryType::Regular,
                "{name} is a regular file entry"
            );
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            (name, content)
        })
        .collect()
}

fn sha1_hex(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file of the root filesystem in the raw disk, read with debugfs.
fn read_in_image(raw: &Path, path: &str) -> Vec<u8> {
    let device = format!("{}?offset={}", raw.display(), image::PARTITION_OFFSET_BYTES);
    run("debugfs", &["-R", &format!("cat {path}"), &device])
}

fn stat_in_image(raw: &Path, path: &str) -> String {
    let device = format!("{}?offset={}", raw.display(), image::PARTITION_OFFSET_BYTES);
    String::from_utf8(run("debugfs", &["-R", &format!("stat {path}"), &device])).unwrap()
}

#[test]
fn builds_a_bootable_stemcell_with_the_agent() {
    let agent = agent_binary();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let output = dir.path().join("out");
    let started = std::time::Instant::now();
    let result = Command::new(env!("CARGO_BIN_EXE_stemcell-builder"))
        .args(["build", "--version", "0.0.7", "--agent"])
        .arg(&agent)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "build failed:\n{stderr}");
    // Benchmark figures: the builder's own stage timings and sizes.
    eprintln!("build took {:.1} s", started.elapsed().as_secs_f64());
    for line in stderr.lines().filter(|l| !l.contains("INFO")) {
        eprintln!("{line}");
    }
    let stdout = String::from_utf8(result.stdout).unwrap();
    let tarball = PathBuf::from(stdout.lines().last().unwrap());
    assert_eq!(
        tarball,
        output.join("bosh-stemcell-0.0.7-qemu-kvm-debian-bookworm.tgz")
    );
    let leftovers: Vec<_> = fs::read_dir(&output)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "the work dir is removed: {leftovers:?}");

    // The tarball: stemcell.MF, packages.txt, dev_tools_file_list.txt, image.
    let entries = untar_gz(&tarball);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, tarball::ENTRIES);
    let dev_tools = String::from_utf8(entries[2].1.clone()).unwrap();
    for file in [
        "/usr/bin/x86_64-linux-gnu-gcc-12",
        "/usr/bin/make",
        "/usr/include/stdio.h",
    ] {
        assert!(
            dev_tools.lines().any(|line| line == file),
            "{file} not in dev_tools_file_list.txt"
        );
    }
    // The image: entries[3].
    let entries = [entries[0].clone(), entries[1].clone(), entries[3].clone()];
    let manifest: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&entries[0].1).unwrap();
    let field = |key: &str| manifest[key].clone();
    assert_eq!(
        field("name").as_str(),
        Some("bosh-qemu-kvm-debian-bookworm")
    );
    assert_eq!(field("version").as_str(), Some("0.0.7"));
    assert_eq!(field("api_version").as_u64(), Some(3));
    assert_eq!(field("bosh_protocol").as_str(), Some("1"));
    assert_eq!(field("operating_system").as_str(), Some("debian-bookworm"));
    assert_eq!(
        field("stemcell_formats"),
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>("[qemu-qcow2]").unwrap()
    );
    let cloud = field("cloud_properties");
    assert_eq!(cloud["infrastructure"].as_str(), Some("qemu"));
    assert_eq!(cloud["architecture"].as_str(), Some("x86_64"));
    assert_eq!(cloud["root_device_name"].as_str(), Some("/dev/vda"));
    assert_eq!(cloud["disk"].as_u64(), Some(3072));
    assert_eq!(
        field("sha1").as_str(),
        Some(sha1_hex(&entries[2].1).as_str())
    );
    let packages = String::from_utf8(entries[1].1.clone()).unwrap();
    for package in [
        "linux-image-cloud-amd64",
        "systemd",
        "systemd-resolved",
        "udev",
        "openssh-server",
        "build-essential",
        "xfsprogs",
        "parted",
    ] {
        assert!(
            packages
                .lines()
                .any(|l| l.split('\t').next() == Some(package)),
            "{package} not in packages.txt"
        );
    }

    // `image` holds one qcow2 root.img.
    let image_path = dir.path().join("image");
    fs::write(&image_path, &entries[2].1).unwrap();
    let image_entries = untar_gz(&image_path);
    assert_eq!(image_entries.len(), 1);
    assert_eq!(image_entries[0].0, "root.img");
    let root_img = dir.path().join("root.img");
    fs::write(&root_img, &image_entries[0].1).unwrap();
    let info: serde_json::Value = serde_json::from_slice(&run(
        "qemu-img",
        &["info", "--output=json", root_img.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 3072u64 * 1024 * 1024);
    eprintln!(
        "qcow2 root.img: {:.1} MiB",
        image_entries[0].1.len() as f64 / 1048576.0
    );

    // The disk: syslinux's boot code and one bootable Linux partition from sector 2048 to the end.
    let raw = dir.path().join("root.raw");
    run(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            root_img.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    let mbr_bin = fs::read(image::MBR_BIN).unwrap();
    let head = {
        let mut head = vec![0u8; 440];
        fs::File::open(&raw).unwrap().read_exact(&mut head).unwrap();
        head
    };
    assert_eq!(
        head[..mbr_bin.len().min(440)],
        mbr_bin[..mbr_bin.len().min(440)]
    );
    assert_eq!(
        image::read_partitions(&raw).unwrap(),
        [(true, 2048, 3072 * 2048 - 2048, 0x83)]
    );

    // The root filesystem: the agent, its unit and configuration, boot and identity files.
    assert_eq!(
        read_in_image(&raw, "/var/vcap/bosh/agent.json"),
        customize::agent_json().as_bytes()
    );
    assert_eq!(
        read_in_image(&raw, "/var/vcap/bosh/etc/dev_tools_file_list"),
        dev_tools.as_bytes()
    );
    let static_libraries = String::from_utf8(read_in_image(
        &raw,
        "/var/vcap/bosh/etc/static_libraries_list",
    ))
    .unwrap();
    assert!(
        static_libraries
            .lines()
            .any(|line| line == "/usr/lib/x86_64-linux-gnu/libc.a"),
        "{static_libraries}"
    );
    assert_eq!(
        read_in_image(&raw, "/etc/systemd/system/bosh-agent.service"),
        customize::agent_unit().as_bytes()
    );
    assert_eq!(
        sha1_hex(&read_in_image(&raw, "/var/vcap/bosh/bin/bosh-agent")),
        sha1_hex(&fs::read(&agent).unwrap()),
        "the agent in the image is the given binary"
    );
    assert!(
        stat_in_image(
            &raw,
            "/etc/systemd/system/multi-user.target.wants/bosh-agent.service"
        )
        .contains("link dest: \"/etc/systemd/system/bosh-agent.service\"")
    );
    assert!(stat_in_image(&raw, "/var/vcap/bosh/bin/monit").contains("link dest: \"bosh-agent\""));
    for unit in ["systemd-networkd.service", "systemd-resolved.service"] {
        let wants = if unit == "systemd-resolved.service" {
            "sysinit.target.wants"
        } else {
            "multi-user.target.wants"
        };
        assert!(
            stat_in_image(&raw, &format!("/etc/systemd/system/{wants}/{unit}"))
                .contains("Type: symlink"),
            "{unit} not enabled"
        );
    }
    assert!(stat_in_image(&raw, "/boot/extlinux/ldlinux.sys").contains("Type: regular"));
    let extlinux = String::from_utf8(read_in_image(&raw, "/boot/extlinux/extlinux.conf")).unwrap();
    let device = format!("{}?offset={}", raw.display(), image::PARTITION_OFFSET_BYTES);
    let stats = String::from_utf8(run("debugfs", &["-R", "stats", &device])).unwrap();
    let uuid = stats
        .lines()
        .find_map(|l| l.strip_prefix("Filesystem UUID:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        extlinux.contains(&format!("root=UUID={uuid} ")),
        "{extlinux}"
    );
    assert!(extlinux.contains("console=ttyS0,115200"));
    assert_eq!(
        read_in_image(&raw, "/etc/fstab"),
        customize::fstab(&uuid).as_bytes()
    );
    assert_eq!(read_in_image(&raw, "/etc/machine-id"), b"");
    assert_eq!(read_in_image(&raw, "/etc/hostname"), b"bosh-stemcell\n");
    let passwd = String::from_utf8(read_in_image(&raw, "/etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("vcap:x:1000:1000:")),
        "{passwd}"
    );
    let group = String::from_utf8(read_in_image(&raw, "/etc/group")).unwrap();
    for name in ["admin", "bosh_sudoers", "bosh_sshers"] {
        assert!(
            group
                .lines()
                .any(|l| l.starts_with(&format!("{name}:")) && l.ends_with(":vcap")),
            "{name}: {group}"
        );
    }
    assert!(group.lines().any(|l| l.starts_with("vcap:x:1000:")));
    assert!(
        stat_in_image(&raw, "/etc/resolv.conf").contains("stub-resolv.conf"),
        "resolv.conf is systemd-resolved's, not the build host's"
    );
    let ssh = String::from_utf8(run("debugfs", &["-R", "ls -l /etc/ssh", &device])).unwrap();
    assert!(
        !ssh.contains("ssh_host_"),
        "no host keys in the image: {ssh}"
    );
    let initramfs_conf = read_in_image(&raw, "/etc/initramfs-tools/conf.d/bosh-root-fstype");
    assert_eq!(initramfs_conf, customize::initramfs_conf().as_bytes());
}
