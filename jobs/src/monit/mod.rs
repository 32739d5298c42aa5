//! What a BOSH job's `monit` file says, as a typed model for the built-in supervisor.
//!
//! The Go agent copies each job's `monit` and `*.monit` files verbatim into
//! `/var/vcap/monit/job/NNNN_<job>[_<label>].monitrc` and lets monit 5.2.5 read them
//! (`jobsupervisor/monit_job_supervisor.go`). Our supervisor reads them itself, so it needs the subset
//! of monit's control-file language that releases use: `check process <name> with pidfile <path>`,
//! `start program`, `stop program`, `restart program`, `group`, `depends on`, `mode`, `every`, the
//! `if ... then ...` tests, `alert` and `noalert`.
//!
//! [`parse()`] turns the text of one file into a [`MonitFile`]. It never does IO, and it keeps what it
//! cannot model instead of failing: checks of other kinds (`check file`, `check host`, ...), global
//! `set` statements and tests it does not understand become [`Unsupported`] entries with their line,
//! for the supervisor to report. Only text that cannot be a monit file at all is a [`parse::Error`].
//!
//! The grammar follows monit's own lexer and parser (`src/l.l` and `src/p.y` in the monit sources):
//! keywords are case-insensitive, statements are free-form and may span lines, and noise words such
//! as `with`, `and`, `as`, `for`, `using` and `program` are ignored where monit ignores them.

use std::fmt;
use std::path::PathBuf;

mod lex;
pub mod parse;

pub use parse::parse;

/// One monit file: its services in file order, and what the parser kept but does not model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitFile {
    /// Every `check` block, of every kind, in file order. Only [`Kind::Process`] services can be
    /// supervised; the others are also listed in `unsupported`.
    pub services: Vec<Service>,
    /// Statements and checks the supervisor cannot honour, in file order.
    pub unsupported: Vec<Unsupported>,
}

/// One `check` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// The service name, which `depends on`, the monit HTTP API and alerts use.
    pub name: String,
    /// What the block checks.
    pub kind: Kind,
    /// The pidfile of a process check (`with pidfile <path>`, or monit's alias `path <path>`).
    /// `None` only for other kinds and for processes found by `matching`.
    pub pidfile: Option<PathBuf>,
    /// The `path`, `address` or `interface` of a check of another kind.
    pub target: Option<String>,
    /// `start program`.
    pub start: Option<Program>,
    /// `stop program`.
    pub stop: Option<Program>,
    /// `restart program`; without it monit restarts with `stop` then `start`.
    pub restart: Option<Program>,
    /// The `group` names, without duplicates, in file order (BOSH manages the group `vcap`).
    pub groups: Vec<String>,
    /// The services this one `depends on`, without duplicates, in file order.
    pub depends_on: Vec<String>,
    /// `mode`; [`Mode::Active`] when absent.
    pub mode: Mode,
    /// `every <n> cycles`: the service is checked only every n-th poll cycle.
    pub every_cycles: Option<u32>,
    /// The `if ... then ...` tests the parser understood.
    pub tests: Vec<Test>,
    /// `alert` and `noalert` statements.
    pub alerts: Vec<Alert>,
    /// The 1-based line of the `check` keyword.
    pub line: usize,
}

/// What a `check` block checks (`check process`, `check file`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `check process`, the only kind the supervisor runs.
    Process,
    /// `check file`.
    File,
    /// `check fifo`.
    Fifo,
    /// `check directory`.
    Directory,
    /// `check filesystem`, or its old alias `check device`.
    Filesystem,
    /// `check host`.
    Host,
    /// `check system`.
    System,
    /// `check program`.
    Program,
    /// `check network`.
    Network,
}

/// A `start`, `stop` or `restart` program, or the program of an `exec` action.
///
/// Monit runs it without a shell: it splits the quoted text into words on blanks, a single-quoted
/// part being one word, and `execv`s the first word with the rest as arguments. A command that
/// needs the shell says so itself (`"/bin/sh -c '...'"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The command as written between the double quotes.
    pub command: String,
    /// The words monit executes; `argv[0]` is the program's path.
    pub argv: Vec<String>,
    /// `as uid <user>`: a user name or number.
    pub uid: Option<String>,
    /// `and gid <group>`: a group name or number.
    pub gid: Option<String>,
    /// `with timeout <n> seconds`: how long monit waits for the process to appear (start) or
    /// disappear (stop); monit's default is 30 seconds.
    pub timeout_secs: Option<u64>,
}

/// `mode`: how monit reacts to a failing service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Monit starts the service and acts on failed tests (the default).
    #[default]
    Active,
    /// Monit only alerts; it never starts, stops or restarts the service.
    Passive,
    /// Monit watches the service only after an explicit `monit start` or `monitor`.
    Manual,
}

/// One `if <condition> [rate] then <action> [else if recovered then <action>]` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// What is tested.
    pub condition: Condition,
    /// How many failed cycles trigger the action; `None` means the first one.
    pub rate: Option<Rate>,
    /// What monit does when the test fails.
    pub action: Action,
    /// `else if recovered|passed|succeeded [rate] then <action>`.
    pub recovery: Option<Recovery>,
    /// The 1-based line of the `if`.
    pub line: usize,
}

/// The condition of a [`Test`].
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `if failed [host <h>] port <n> ...` or `if failed unixsocket <path> ...`.
    Connection(Connection),
    /// `if <resource> <operator> <limit>`, e.g. `if totalmem > 1000 MB`.
    Resource {
        /// What is measured.
        resource: Resource,
        /// How the measure is compared with the limit.
        operator: Operator,
        /// The limit.
        limit: Limit,
    },
    /// `if does not exist`: the process is not running (monit restarts it anyway).
    DoesNotExist,
    /// `if <restarts> restarts within <cycles> cycles`: the restart limit monit calls a service
    /// timeout. Its rate is in the condition, so the test's `rate` is `None`.
    Restarts {
        /// How many restarts.
        restarts: u32,
        /// Within how many poll cycles.
        cycles: u32,
    },
}

/// A connection test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// `type tcp|udp|tcpssl`; TCP when absent.
    pub socket_type: SocketType,
    /// `protocol <name>`, lower case (`http`, `smtp`, ...); a plain connect when absent.
    pub protocol: Option<String>,
    /// `request <path>` for protocol tests such as `http`.
    pub request: Option<String>,
    /// `with timeout <n> seconds`; monit's default is 5 seconds.
    pub timeout_secs: Option<u64>,
    /// `retry <n>`: attempts per cycle.
    pub retries: Option<u32>,
}

/// Where a connection test connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `[host <host>] port <port>`; no host means `localhost`.
    Port {
        /// The host name or address.
        host: Option<String>,
        /// The port.
        port: u16,
    },
    /// `unixsocket <path>`.
    UnixSocket(PathBuf),
}

/// `type` of a connection test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SocketType {
    /// `tcp`, the default.
    #[default]
    Tcp,
    /// `tcpssl`.
    TcpSsl,
    /// `udp`.
    Udp,
}

/// A process resource monit measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `cpu`: the process's own CPU share.
    Cpu,
    /// `totalcpu`: the CPU share of the process and its children.
    TotalCpu,
    /// `memory` or `mem`: the process's own memory.
    Memory,
    /// `totalmem` or `totalmemory`: the memory of the process and its children.
    TotalMemory,
    /// `children`: the number of child processes.
    Children,
}

/// A comparison operator (`>`, `gt`, `greater`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Operator {
    /// `>`, `gt`, `greater`, `more`.
    Greater,
    /// `>=`, `ge`.
    GreaterOrEqual,
    /// `<`, `lt`, `less`.
    Less,
    /// `<=`, `le`.
    LessOrEqual,
    /// `=`, `==`, `eq`, `equal`, or no operator at all, as in monit.
    #[default]
    Equal,
    /// `!=`, `ne`, `notequal`.
    NotEqual,
}

/// The limit of a resource test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// A share in percent (`90 %`).
    Percent(f64),
    /// An amount of memory, in bytes: monit's units `B`, `KB`, `MB` and `GB` are powers of 1024.
    Bytes(u64),
    /// A plain number (of children).
    Count(u64),
}

/// How many failed cycles trigger an action: `for <cycles> cycles`, or
/// `<events> times within <cycles> cycles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many failed cycles.
    pub events: u32,
    /// Out of how many consecutive cycles.
    pub cycles: u32,
}

/// What monit does when a test fails or recovers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `alert`.
    Alert,
    /// `restart`.
    Restart,
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `unmonitor`, and the `timeout` of a restart limit, which monit implements as unmonitor.
    Unmonitor,
    /// `exec "<program>" [as uid <user>] [and gid <group>]`.
    Exec(Program),
}

/// The `else if recovered [rate] then <action>` part of a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// How many passed cycles trigger the action.
    pub rate: Option<Rate>,
    /// What monit does.
    pub action: Action,
}

/// An `alert <address>` or `noalert <address>` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The e-mail address.
    pub recipient: String,
    /// `noalert`: this service sends no alert to the recipient, not even through `set alert`.
    pub is_noalert: bool,
    /// The events named in `{ ... }`, lower case; empty means every event.
    pub events: Vec<String>,
    /// `not { ... }`: `events` lists the events *not* to send.
    pub is_events_excluded: bool,
    /// The 1-based line of the statement.
    pub line: usize,
}

/// Something in the file the supervisor cannot honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The 1-based line where it starts.
    pub line: usize,
    /// The statement, its words separated by single spaces and comments left out.
    pub text: String,
    /// The service it belongs to; `None` at the top level.
    pub service: Option<String>,
    /// Why it is unsupported.
    pub reason: Reason,
}

/// Why a statement is [`Unsupported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A check of a kind other than `process`. Its service is still in [`MonitFile::services`].
    Check(Kind),
    /// A monit-wide statement (`set ...`, `include ...`), which the stemcell's own monitrc owns.
    Global,
    /// A service statement before the first `check`, or after a `set`, so it belongs to no service.
    OutsideCheck,
    /// A statement or test the model does not cover, or whose arguments the parser does not
    /// understand (process `matching`, `if changed pid`, `alert ... with mail-format`, ...).
    Statement,
}

impl MonitFile {
    /// Reads the absolute paths under `from` (BOSH's `/var/vcap`) in pidfiles and programs as paths
    /// under `to`: a job written for `/var/vcap` then runs under an agent whose base dir is
    /// elsewhere (`-b`, as every VM of the process CPI has). Other paths stay as they are.
    pub fn relocate(&mut self, from: &std::path::Path, to: &std::path::Path) {
        let map = |text: &str| -> Option<String> {
            let rest = std::path::Path::new(text).strip_prefix(from).ok()?;
            Some(to.join(rest).to_string_lossy().into_owned())
        };
        for service in &mut self.services {
            if let Some(pidfile) = &service.pidfile {
                if let Some(mapped) = pidfile.to_str().and_then(map) {
                    service.pidfile = Some(mapped.into());
                }
            }
            for program in [&mut service.start, &mut service.stop, &mut service.restart]
                .into_iter()
                .flatten()
            {
                for arg in &mut program.argv {
                    if let Some(mapped) = map(arg) {
                        *arg = mapped;
                    }
                }
            }
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Process => "process",
            Kind::File => "file",
            Kind::Fifo => "fifo",
            Kind::Directory => "directory",
            Kind::Filesystem => "filesystem",
            Kind::Host => "host",
            Kind::System => "system",
            Kind::Program => "program",
            Kind::Network => "network",
        })
    }
}

impl fmt::Display for Unsupported {
    /// `line <n>: <text> (<why>)`, for the supervisor's report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            Reason::Check(kind) => format!("check {kind} is not supported"),
            Reason::Global => "monit-wide settings belong to the stemcell".to_owned(),
            Reason::OutsideCheck => "belongs to no check".to_owned(),
            Reason::Statement => "not supported".to_owned(),
        };
        write!(f, "line {}: {} ({why})", self.line, self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_displays_line_text_and_reason() {
        let check = Unsupported {
            line: 7,
            text: "check file config with path /var/vcap/jobs/x/config/x.yml".to_owned(),
            service: Some("config".to_owned()),
            reason: Reason::Check(Kind::File),
        };
        assert_eq!(
            check.to_string(),
            "line 7: check file config with path /var/vcap/jobs/x/config/x.yml (check file is not supported)"
        );
        let set = Unsupported {
            line: 1,
            text: "set daemon 10".to_owned(),
            service: None,
            reason: Reason::Global,
        };
        assert_eq!(
            set.to_string(),
            "line 1: set daemon 10 (monit-wide settings belong to the stemcell)"
        );
    }

    #[test]
    fn relocate_moves_var_vcap_paths_under_the_base_dir_only() {
        let mut file = parse::parse(
            "check process web\n  with pidfile /var/vcap/sys/run/web/web.pid\n  start program \"/var/vcap/jobs/web/bin/ctl start\"\n  stop program \"/bin/sh -c '/var/vcap/jobs/web/bin/ctl stop'\"\n",
        )
        .unwrap();
        file.relocate(
            std::path::Path::new("/var/vcap"),
            std::path::Path::new("/tmp/vm-1"),
        );
        let web = &file.services[0];
        assert_eq!(
            web.pidfile.as_deref(),
            Some(std::path::Path::new("/tmp/vm-1/sys/run/web/web.pid"))
        );
        assert_eq!(
            web.start.as_ref().unwrap().argv,
            ["/tmp/vm-1/jobs/web/bin/ctl", "start"]
        );
        // An argument that starts with a path under /var/vcap moves; `/var/vcapx` would not.
        assert_eq!(
            web.stop.as_ref().unwrap().argv,
            ["/bin/sh", "-c", "/tmp/vm-1/jobs/web/bin/ctl stop"]
        );
    }
}

/// Why a job's monit files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading a file failed.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a monit file.
    #[error("parsing {}", .path.display())]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: parse::Error,
    },
}

/// The monit files of an installed job (`<job dir>/monit` and every `<job dir>/*.monit`, as the Go
/// agent copies them to monit's job directory), merged into one; a job without any has none.
pub fn read_job_files(job_dir: &std::path::Path) -> Result<MonitFile, ReadError> {
    let mut paths = vec![job_dir.join("monit")];
    if let Ok(entries) = std::fs::read_dir(job_dir) {
        let mut extra: Vec<_> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "monit") && path.is_file())
            .collect();
        extra.sort();
        paths.extend(extra);
    }
    let mut merged = MonitFile::default();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ReadError::Read { path, source }),
        };
        let file = parse::parse(&text).map_err(|source| ReadError::Parse { path, source })?;
        merged.services.extend(file.services);
        merged.unsupported.extend(file.unsupported);
    }
    Ok(merged)
}
