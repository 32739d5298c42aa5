//! The root shell of a test VM: a client for the `shell.sock` Unix socket that QEMU binds to the
//! guest's virtio console `/dev/hvc0`, where the test layer's `backdoor.service` runs bash (the NixOS
//! test driver's backdoor, `nixos/lib/test-driver/src/test_driver/machine/__init__.py`).
//!
//! Each command is sent base64-encoded (so no quoting, newline or tty processing can change it) and
//! run by `eval` in a subshell with stdin from `/dev/null`; its output comes back base64-encoded
//! between two lines that carry a marker unique to the call, followed by its exit status. Whatever
//! else reaches the socket (output of an earlier call that timed out, a probe answered late, bash
//! noise) matches no current marker and is skipped.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// How long one probe waits for an answer while the shell comes up.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// A command's exit status and its combined stdout and stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit status (`128 + n` when signal `n` ended it, as bash reports).
    pub status: i32,
    /// stdout and stderr, interleaved as the command wrote them.
    pub output: String,
}

/// A connection to a VM's root shell.
#[derive(Debug)]
pub struct Shell {
    socket: PathBuf,
    stream: UnixStream,
    /// Bytes read but not consumed yet.
    pending: Vec<u8>,
}

impl Shell {
    /// Connects to `socket` and waits until a shell answers there, for at most `timeout` (the
    /// socket appears when QEMU starts; the shell once the guest reaches `backdoor.service`).
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Shell> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(err) if Instant::now() >= deadline => {
                    return Err(err).with_context(|| {
                        format!("connecting to the VM's shell at {}", socket.display())
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        let mut shell = Shell {
            socket: socket.to_owned(),
            stream,
            pending: Vec::new(),
        };
        // Input sent before bash reads the console is lost or run late; probe until one answers.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "no shell answered on {} within {timeout:?} (is backdoor.service in the test layer running?)",
                    socket.display()
                );
            }
            match shell.execute("true", left.min(PROBE_WAIT)) {
                Ok(_) => return Ok(shell),
                Err(err) if is_timeout(&err) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Runs `command` (bash syntax) and returns its status and output; an error when the shell
    /// does not answer within `timeout` or the connection breaks.
    pub fn execute(&mut self, command: &str, timeout: Duration) -> Result<Outcome> {
        let marker = new_marker();
        let line = wrap(command, &marker);
        self.stream
            .write_all(line.as_bytes())
            .with_context(|| format!("sending a command to {}", self.socket.display()))?;
        let deadline = Instant::now() + timeout;
        loop {
            match parse(&self.pending, &marker) {
                Parsed::Done { outcome, consumed } => {
                    self.pending.drain(..consumed);
                    return outcome;
                }
                Parsed::Incomplete { skip } => {
                    self.pending.drain(..skip);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(anyhow::Error::new(TimedOut)).with_context(|| {
                    format!("the VM's shell did not finish {command:?} within {timeout:?}")
                });
            }
            self.read_some(left)?;
        }
    }

    fn read_some(&mut self, wait: Duration) -> Result<()> {
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .context("setting the shell socket's read timeout")?;
        let mut buffer = [0u8; 64 * 1024];
        match self.stream.read(&mut buffer) {
            Ok(0) => bail!("the VM's shell at {} hung up", self.socket.display()),
            Ok(read) => {
                self.pending.extend_from_slice(&buffer[..read]);
                Ok(())
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
            Err(err) => Err(err)
                .with_context(|| format!("reading the VM's shell at {}", self.socket.display())),
        }
    }
}

/// The shell did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("timed out")]
pub struct TimedOut;

/// Whether `err` is a shell time-out (rather than a broken connection).
pub fn is_timeout(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<TimedOut>())
}

/// The line sent for `command`: decode it, print the begin marker, run it with its output
/// base64-encoded on one line, then the end marker and its status.
pub fn wrap(command: &str, marker: &str) -> String {
    let encoded = BASE64.encode(command);
    format!(
        "__vmt_cmd=$(echo {encoded} | base64 -d); echo {marker}-begin; \
         ( eval \"$__vmt_cmd\" ) </dev/null 2>&1 | base64 -w0; __vmt_status=${{PIPESTATUS[0]}}; \
         echo; echo {marker}-end $__vmt_status\n"
    )
}

/// What [`parse`] found in the bytes read so far.
#[derive(Debug)]
pub enum Parsed {
    /// The answer to the current marker is complete: it and everything before it may be dropped.
    Done {
        /// The decoded answer, or why it does not decode.
        outcome: Result<Outcome>,
        /// Bytes used up.
        consumed: usize,
    },
    /// Not complete yet; `skip` leading bytes are whole lines that belong to nothing current.
    Incomplete {
        /// Leading bytes that can be dropped.
        skip: usize,
    },
}

/// Looks for `<marker>-begin`, the base64 line, and `<marker>-end <status>` as whole lines (a
/// carriage return before the newline is allowed).
pub fn parse(buffer: &[u8], marker: &str) -> Parsed {
    let begin = format!("{marker}-begin");
    let end_prefix = format!("{marker}-end ");
    let mut lines = Vec::new();
    let mut start = 0;
    for (index, byte) in buffer.iter().enumerate() {
        if *byte == b'\n' {
            let line = &buffer[start..index];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            lines.push((String::from_utf8_lossy(line).into_owned(), index + 1));
            start = index + 1;
        }
    }
    let Some(begin_at) = lines.iter().position(|(line, _)| *line == begin) else {
        // No begin marker: every whole line read so far is noise.
        return Parsed::Incomplete { skip: start };
    };
    let skip = if begin_at == 0 {
        0
    } else {
        lines[begin_at - 1].1
    };
    let after = &lines[begin_at + 1..];
    let Some(end_at) = after
        .iter()
        .position(|(line, _)| line.starts_with(&end_prefix))
    else {
        return Parsed::Incomplete { skip };
    };
    let (end_line, consumed) = &after[end_at];
    let encoded: String = after[..end_at]
        .iter()
        .map(|(line, _)| line.trim())
        .collect();
    let outcome = decode(&encoded, &end_line[end_prefix.len()..]);
    Parsed::Done {
        outcome,
        consumed: *consumed,
    }
}

fn decode(encoded: &str, status: &str) -> Result<Outcome> {
    let status: i32 = status
        .trim()
        .parse()
        .with_context(|| format!("the shell reported the exit status {status:?}"))?;
    let bytes = BASE64
        .decode(encoded)
        .with_context(|| format!("the shell's output {encoded:?} is not base64"))?;
    Ok(Outcome {
        status,
        output: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// A marker no output contains by accident: the process id, a counter and the time.
fn new_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    format!("VMT{}x{count}x{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(parsed: Parsed) -> (Outcome, usize) {
        match parsed {
            Parsed::Done { outcome, consumed } => (outcome.unwrap(), consumed),
            other => panic!("expected a complete answer, got {other:?}"),
        }
    }

    #[test]
    fn wrapped_command_is_one_line_with_the_command_base64_encoded() {
        let line = wrap("echo 'a b'\nfalse", "M1");
        assert_eq!(
            line,
            "__vmt_cmd=$(echo ZWNobyAnYSBiJwpmYWxzZQ== | base64 -d); echo M1-begin; \
             ( eval \"$__vmt_cmd\" ) </dev/null 2>&1 | base64 -w0; __vmt_status=${PIPESTATUS[0]}; \
             echo; echo M1-end $__vmt_status\n"
        );
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn wrapped_command_runs_in_bash_and_parses_back() {
        // The wrapper is bash; run it on the host to prove the round trip.
        let line = wrap("printf 'out\\n'; echo err >&2; exit 3", "M2");
        let output = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &line])
            .output()
            .unwrap();
        let (outcome, consumed) = done(parse(&output.stdout, "M2"));
        assert_eq!(
            outcome,
            Outcome {
                status: 3,
                output: "out\nerr\n".to_owned()
            }
        );
        assert_eq!(consumed, output.stdout.len());
    }

    #[test]
    fn answer_is_found_after_noise_and_stale_answers() {
        let buffer = b"garbage\r\nOLD-begin\naGk=\nOLD-end 0\n\
            echo M3-begin; echo (echoed input)\nM3-begin\r\naGVsbG8K\r\nM3-end 0\r\nnext";
        let (outcome, consumed) = done(parse(buffer, "M3"));
        assert_eq!(
            outcome,
            Outcome {
                status: 0,
                output: "hello\n".to_owned()
            }
        );
        assert_eq!(&buffer[consumed..], b"next");
    }

    #[test]
    fn empty_output_and_failure_status() {
        let (outcome, _) = done(parse(b"M4-begin\n\nM4-end 127\n", "M4"));
        assert_eq!(
            outcome,
            Outcome {
                status: 127,
                output: String::new()
            }
        );
    }

    #[test]
    fn partial_answer_is_incomplete_and_keeps_its_begin_line() {
        let buffer = b"noise\nM5-begin\naGVs";
        match parse(buffer, "M5") {
            Parsed::Incomplete { skip } => assert_eq!(&buffer[skip..], b"M5-begin\naGVs"),
            other => panic!("expected incomplete, got {other:?}"),
        }
        match parse(b"noise\npartial", "M5") {
            Parsed::Incomplete { skip } => assert_eq!(skip, 6),
            other => panic!("expected incomplete, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_status_is_an_error_naming_it() {
        match parse(b"M6-begin\n\nM6-end x\n", "M6") {
            Parsed::Done { outcome, .. } => {
                let err = outcome.unwrap_err();
                assert!(format!("{err:#}").contains("\"x\""), "{err:#}");
            }
            other => panic!("expected done, got {other:?}"),
        }
    }

    #[test]
    fn markers_differ_between_calls() {
        assert_ne!(new_marker(), new_marker());
    }

    #[test]
    fn connect_times_out_naming_the_socket_when_nothing_listens() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("shell.sock");
        let err = Shell::connect(&socket, Duration::from_millis(300)).unwrap_err();
        assert!(format!("{err:#}").contains("shell.sock"), "{err:#}");
    }

    #[test]
    fn shell_answers_through_a_socket_served_by_bash() {
        // A stand-in for QEMU's socket: a listener whose connection is bash's stdin and stdout.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("shell.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let input = stream.try_clone().unwrap();
            std::process::Command::new("bash")
                .args(["--norc", "--noprofile"])
                .stdin(std::os::fd::OwnedFd::from(input))
                .stdout(std::os::fd::OwnedFd::from(stream))
                .status()
                .unwrap()
        });
        let mut shell = Shell::connect(&socket, Duration::from_secs(10)).unwrap();
        let outcome = shell
            .execute("echo one; echo two >&2; exit 4", Duration::from_secs(10))
            .unwrap();
        assert_eq!(outcome.status, 4);
        assert_eq!(outcome.output, "one\ntwo\n");
        let err = shell
            .execute("sleep 5", Duration::from_millis(200))
            .unwrap_err();
        assert!(is_timeout(&err), "{err:#}");
        // The late answer of the timed-out call is skipped; the next call gets its own.
        let outcome = shell
            .execute("echo after", Duration::from_secs(10))
            .unwrap();
        assert_eq!(outcome.output, "after\n");
        // Closing the connection ends bash (end of input).
        drop(shell);
        server.join().unwrap();
    }
}
