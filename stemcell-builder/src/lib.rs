//! The stemcell builder: a Debian 12 (bookworm) image that boots by itself (BIOS, extlinux) with
//! the agent installed as a systemd service, shipped as a compressed qcow2 disk in a BOSH stemcell
//! tarball (`stemcell.MF`, `packages.txt`, `image`).
//!
//! [`build::build`] runs the stages in order, each in its own module:
//! [`debootstrap`] (the cached Debian root), [`customize`] (the stemcell's files, the vcap user,
//! units, initramfs), [`image`] (partitioned raw disk, ext4, extlinux, qcow2) and [`tarball`]
//! (`image` and the stemcell tarball, with [`manifest`] for `stemcell.MF`). Every command goes
//! through [`run::run`] on a `platform::cmd::CommandRunner`; [`chroot`] mounts `/proc`, `/sys` and
//! `/dev` in the image only while chroot commands need them.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod build;
pub mod chroot;
pub mod customize;
pub mod debootstrap;
pub mod dev_tools;
pub mod image;
pub mod manifest;
pub mod run;
pub mod tarball;
