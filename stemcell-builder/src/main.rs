//! `stemcell-builder build --agent <bosh-agent> --output <dir> [--cache <dir>] [--version <v>]`:
//! builds the Debian bookworm stemcell (see the library docs), prints progress and the time of
//! each stage on stderr, and the tarball's path as the last line on stdout.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use platform::cmd::SystemRunner;
use stemcell_builder::build::{self, Options};
use stemcell_builder::debootstrap::Outcome;

#[derive(Debug, Parser)]
#[command(
    name = "stemcell-builder",
    about = "Builds the Debian bookworm QEMU stemcell"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Builds a stemcell tarball.
    Build {
        /// The bosh-agent binary to install.
        #[arg(long)]
        agent: PathBuf,
        /// The directory the tarball is written to.
        #[arg(long)]
        output: PathBuf,
        /// The cache of the debootstrap stage (default: $STEMCELL_CACHE_DIR or
        /// /var/cache/bosh-rs/stemcell).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// The stemcell version.
        #[arg(long, default_value = build::DEFAULT_VERSION)]
        version: String,
        /// Where the temporary work directory goes (default: the output directory); a tmpfs is
        /// fastest.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// The virtual disk's size in MiB.
        #[arg(long, default_value_t = stemcell_builder::image::DEFAULT_DISK_SIZE_MIB)]
        disk_size_mib: u64,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let Command::Build {
        agent,
        output,
        cache,
        version,
        disk_size_mib,
        work_dir,
    } = Cli::parse().command;
    let mut options = Options::new(agent, output);
    if let Some(cache) = cache {
        options.cache_dir = cache;
    }
    options.version = version;
    options.disk_size_mib = disk_size_mib;
    options.work_parent = work_dir;
    match build::build(&SystemRunner, &options) {
        Ok(report) => {
            let t = report.timings;
            let stage = match report.debootstrap {
                Outcome::CacheHit => "debootstrap (cache hit)",
                Outcome::Built => "debootstrap",
            };
            eprintln!("{stage}: {:.1} s", t.debootstrap.as_secs_f64());
            eprintln!("customise: {:.1} s", t.customize.as_secs_f64());
            eprintln!("image: {:.1} s", t.image.as_secs_f64());
            eprintln!("tarball: {:.1} s", t.tarball.as_secs_f64());
            eprintln!("cleanup: {:.1} s", t.cleanup.as_secs_f64());
            eprintln!(
                "total: {:.1} s",
                (t.debootstrap + t.customize + t.image + t.tarball + t.cleanup).as_secs_f64()
            );
            eprintln!(
                "qcow2 image: {:.1} MiB (virtual disk {} MiB), tarball: {:.1} MiB",
                report.qcow2_bytes as f64 / 1048576.0,
                options.disk_size_mib,
                report.tarball_bytes as f64 / 1048576.0
            );
            println!("{}", report.tarball.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("stemcell-builder: {:#}", anyhow::Error::from(err));
            ExitCode::FAILURE
        }
    }
}
