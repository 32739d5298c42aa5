# Shared by scripts/main and scripts/test: install what a fresh Debian 12 machine lacks.
# Sourced, not run.

# ensure_packages PKG...: installs the Debian packages that are not installed yet (needs root).
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_rust: checks for a Rust toolchain new enough for edition 2024 with rustfmt and clippy.
# Debian 12's own rustc is too old; install the toolchain with rustup (https://rustup.rs) first.
ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust 1.85 or newer with rustup, then run this again" >&2
    exit 1
  fi
  local version
  version=$(rustc --version | awk '{print $2}')
  if [ "$(printf '%s\n1.85.0\n' "$version" | sort -V | head -n1)" != "1.85.0" ]; then
    echo "rustc $version is too old: this workspace needs 1.85 or newer (edition 2024)" >&2
    exit 1
  fi
  for component in fmt clippy; do
    cargo "$component" --version >/dev/null 2>&1 || {
      echo "cargo $component is missing: rustup component add rustfmt clippy" >&2
      exit 1
    }
  done
}

# The Debian packages the build and the tests need: the VM tests build a stemcell (debootstrap,
# sfdisk from fdisk, mkfs.ext4 and debugfs from e2fsprogs, extlinux and syslinux's MBR) and boot it
# under QEMU with config drives made by genisoimage.
# libdbus-1-dev: the agent reaches systemd over D-Bus (the dbus crate links libdbus).
# libblkid-dev, clang, libclang-dev: the blkid crate links libblkid; its -sys crate runs bindgen.
PACKAGES=(build-essential pkg-config libdbus-1-dev libblkid-dev clang libclang-dev ca-certificates
  nats-server ruby
  qemu-system-x86 qemu-utils debootstrap fdisk e2fsprogs extlinux syslinux-common genisoimage)
