//! The harness against a real VM, booted by QEMU directly (no CPI): the test layer's root shell,
//! `succeed`/`fail`/`wait_until_succeeds`, `wait_for_unit` (including its fast failure), the
//! console scanner and a reboot.

// An integration test binary is a test module of its own.
#![allow(clippy::tests_outside_test_module)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vm_tests::harness::machine::BOOT_TIMEOUT;
use vm_tests::harness::{Machine, layer, stemcell};

use support::qemu::DirectVm;

/// Unpacks the stemcell's `image` into `dir/root.img`.
fn root_img(dir: &Path) -> std::path::PathBuf {
    let tarball = stemcell::tarball(&stemcell::cache_dir()).unwrap_or_else(|err| panic!("{err:#}"));
    let image = dir.join("image");
    thin_director::stemcell::read(&tarball, &image).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&image)
        .arg("-C")
        .arg(dir)
        .arg("root.img")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "unpacking root.img from {}",
        tarball.display()
    );
    std::fs::remove_file(&image).unwrap();
    dir.join("root.img")
}

#[test]
fn a_stemcell_with_the_test_layer_is_driven_through_its_root_shell() {
    let dir = tempfile::tempdir().unwrap();
    let stemcell_dir = dir.path().join("stemcell");
    std::fs::create_dir(&stemcell_dir).unwrap();
    let root_img = root_img(&stemcell_dir);
    let started = Instant::now();
    let test_layer = layer::ensure(&root_img, Some(&stemcell::cache_dir().join("test-layers")))
        .unwrap_or_else(|err| panic!("{err:#}"));
    eprintln!(
        "test layer ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let vm = DirectVm::boot(&test_layer, &dir.path().join("vm"));
    let mut machine = Machine::attach("direct", &vm.dir);
    machine.wait_for_console("Linux version", BOOT_TIMEOUT);
    let kernel = started.elapsed();
    machine.wait_for_unit("multi-user.target", BOOT_TIMEOUT);
    eprintln!(
        "boot: QEMU start → kernel {:.1} s, → multi-user.target {:.1} s",
        kernel.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let release = machine.succeed("uname -r");
    assert!(release.trim().ends_with("amd64"), "{release}");
    assert_eq!(machine.succeed("id -u; echo \"a  b\" >&2"), "0\na  b\n");
    assert_eq!(machine.fail("echo no; exit 3"), "no\n");
    machine.succeed("(sleep 2; touch /run/vm-tests-later) >/dev/null 2>&1 &");
    machine.wait_until_succeeds("test -e /run/vm-tests-later", Duration::from_secs(60));
    machine.wait_for_unit("backdoor.service", Duration::from_secs(10));
    // The layer masks the getty that systemd would start on the shell's console.
    assert_eq!(
        machine.succeed("systemctl is-enabled serial-getty@hvc0.service || true"),
        "masked\n"
    );

    // A unit that failed fails the wait at once, naming its state.
    machine.succeed("systemd-run --unit=vm-tests-broken /bin/false");
    let err = machine
        .try_wait_for_unit("vm-tests-broken.service", Duration::from_secs(600))
        .expect_err("waiting for a failed unit must fail");
    let message = format!("{err:#}");
    assert!(
        message.starts_with("unit vm-tests-broken.service is failed/failed (loaded"),
        "{message}"
    );
    assert!(message.contains("/bin/false"), "{message}");

    // The console scanner sees what the guest prints on ttyS0.
    machine.check_console().unwrap();
    // The command's own console check may already see the line; either way the scanner must.
    let _ = machine.execute(
        "echo 'vm-tests: Found ordering cycle on nothing.service/start' > /dev/ttyS0",
        Duration::from_secs(30),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = loop {
        match machine.check_console() {
            Err(err) => break err,
            Ok(()) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(()) => panic!("the scanner did not see the line written to ttyS0"),
        }
    };
    assert!(
        err.to_string()
            .starts_with("systemd ordering cycle on the serial console: "),
        "{err}"
    );
    assert_eq!(machine.console().take_bad_signs().len(), 1);

    // A reboot inside the same QEMU: the shell comes back from a new boot.
    let boot_id = machine.boot_id();
    let _ = machine.execute("systemctl reboot", Duration::from_secs(5));
    let started = Instant::now();
    machine.wait_for_reboot(&boot_id, BOOT_TIMEOUT);
    eprintln!(
        "reboot: shell back in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    machine.wait_for_unit("multi-user.target", BOOT_TIMEOUT);
    assert_ne!(machine.boot_id(), boot_id);
    drop(machine);
    drop(vm);
}
