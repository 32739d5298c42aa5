//! The stemcell the VM tests boot: `STEMCELL_TARBALL` when set, else one built by
//! `stemcell-builder` around this workspace's `bosh-agent` and kept in the cache dir under a
//! sha256 of both binaries, so a run reuses it until the agent or the builder changes.
//!
//! The agent binary is `BOSH_AGENT_BINARY` when set, else `cargo build --release -p agent --bin
//! bosh-agent` (the profile shipped on VMs); the builder is `STEMCELL_BUILDER` when set, else
//! `cargo build -p stemcell-builder`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use sha2::Digest as _;

/// The cache dir: `$STEMCELL_CACHE_DIR`, else the builder's default.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("STEMCELL_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/bosh-rs/stemcell"))
}

/// An exclusive flock(2) of `<cache_dir>/tarballs.lock`, held while a stemcell is looked up or built.
fn lock(cache_dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    let path = cache_dir.join("tarballs.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| anyhow::anyhow!("locking {}: {errno}", path.display()))
}

/// The stemcell tarball to test: `STEMCELL_TARBALL`, a cached build for the current agent, or a new
/// build.
pub fn tarball(cache_dir: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("STEMCELL_TARBALL") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "STEMCELL_TARBALL names {}, which is not a file",
                path.display()
            );
        }
        return Ok(path);
    }
    let agent = agent_binary()?;
    let builder = builder_binary()?;
    let key = sha256_text(&format!(
        "agent {}\nbuilder {}\n",
        sha256_file(&agent)?,
        sha256_file(&builder)?
    ));
    let output = cache_dir.join("tarballs").join(key);
    // Tests run in parallel, each with a world of its own: one builds, the others wait for it.
    let _lock = lock(cache_dir)?;
    if let Some(cached) = find_tarball(&output)? {
        return Ok(cached);
    }
    let partial = output.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    eprintln!(
        "vm-tests: building a stemcell for {} into {}",
        agent.display(),
        output.display()
    );
    let result = Command::new(&builder)
        .arg("build")
        .arg("--agent")
        .arg(&agent)
        .arg("--output")
        .arg(&partial)
        .arg("--cache")
        .arg(cache_dir)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", builder.display()))?;
    if !result.status.success() {
        bail!("{} build failed ({})", builder.display(), result.status);
    }
    let stdout = String::from_utf8_lossy(&result.stdout);
    let built = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .map(|line| PathBuf::from(line.trim()))
        .context("stemcell-builder printed no tarball path")?;
    let name = built
        .file_name()
        .with_context(|| format!("stemcell-builder printed {}", built.display()))?
        .to_owned();
    std::fs::rename(&partial, &output)
        .with_context(|| format!("moving {} to {}", partial.display(), output.display()))?;
    Ok(output.join(name))
}

/// The `bosh-agent` to put in the stemcell.
pub fn agent_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("BOSH_AGENT_BINARY") {
        return Ok(PathBuf::from(path));
    }
    cargo_build(&["--release", "-p", "agent", "--bin", "bosh-agent"])?;
    Ok(target_dir().join("release/bosh-agent"))
}

/// The `stemcell-builder` binary.
pub fn builder_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("STEMCELL_BUILDER") {
        return Ok(PathBuf::from(path));
    }
    cargo_build(&["-p", "stemcell-builder", "--bin", "stemcell-builder"])?;
    Ok(target_dir().join("debug/stemcell-builder"))
}

/// The `*.tgz` in `dir`, if `dir` exists and has one.
pub fn find_tarball(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|extension| extension == "tgz") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// The sha256 of `text`, hex.
fn sha256_text(text: &str) -> String {
    hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// `bytes` in lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The workspace's root.
fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_owned()
}

/// `$CARGO_TARGET_DIR` or `<workspace>/target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"))
}

fn cargo_build(args: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(workspace_dir())
        .arg("build")
        .arg("-j2")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running cargo build {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo build {} failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tarball_in_a_dir_is_found() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_tarball(&dir.path().join("absent")).unwrap(), None);
        std::fs::write(dir.path().join("packages.txt"), "").unwrap();
        assert_eq!(find_tarball(dir.path()).unwrap(), None);
        let tgz = dir
            .path()
            .join("bosh-stemcell-0.1-qemu-kvm-debian-bookworm.tgz");
        std::fs::write(&tgz, "").unwrap();
        assert_eq!(find_tarball(dir.path()).unwrap(), Some(tgz));
    }

    #[test]
    fn sha256_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
