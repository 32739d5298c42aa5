//! `qemu-cpi relay <host:port>`: one guest connection carried to a host loopback service, the
//! program QEMU runs for each connection the guest makes to a forwarded address.
//!
//! QEMU's `guestfwd` can forward to a character device (`-tcp:<host>`) or to a command
//! (`-cmd:<program>`). The character device is one TCP connection QEMU opens when it starts: QEMU
//! refuses to start when the service is not listening yet, and every guest connection shares that
//! one stream, so an agent that reconnects to NATS or fetches blobs over several connections
//! cannot use it. With `-cmd:`, libslirp starts the program for each guest connection, with the
//! connection as its standard input and output (and error); this relay connects to the service
//! and copies bytes both ways until the service closes. It prints nothing: anything written to
//! standard error would reach the guest.

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd as _;

/// Carries standard input and output to `host` until `host` closes its side.
pub fn run(host: SocketAddr) -> io::Result<()> {
    let mut service = TcpStream::connect(host)?;
    // The raw descriptors: std's stdout is line-buffered, which would hold back binary data.
    let mut guest_in = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let mut guest_out = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let mut to_service = service.try_clone()?;
    // The thread ends with the guest's side; the process ends with the service's side.
    std::thread::spawn(move || {
        let _ = io::copy(&mut guest_in, &mut to_service);
        let _ = to_service.shutdown(Shutdown::Write);
    });
    io::copy(&mut service, &mut guest_out)?;
    Ok(())
}
