//! Parses one monit file into a [`MonitFile`], after the grammar of monit's `src/p.y` (monit 5.2.5
//! is what BOSH stemcells ship; later versions only add to it).
//!
//! Monit's grammar is free-form: a `check` starts a service, and each statement keyword (`start`,
//! `group`, `if`, ...) starts a statement of that service, wherever the line breaks fall. Noise
//! words (`with`, `and`, `as`, `for`, `using`, `program`, ...) are skipped as monit's lexer skips
//! them; `then` is not one, a test needs it. A `set` statement is monit-wide and ends the service
//! before it.
//!
//! What we do not model is kept, never a failure: checks of other kinds, `set` and `include`,
//! statements and tests the model lacks, and statements whose arguments we do not understand all
//! become [`Unsupported`] entries. Only text that cannot be a monit file at all is an [`Error`]: an
//! unterminated quote or brace, a statement keyword without its mandatory argument (`check process`
//! without a name, `pidfile` without a path, an empty `start program ""`), a process check without
//! a pidfile, or a service checked twice. Tests (`if ...`) never fail the file: one that does not
//! parse is unsupported.
//!
//! Two statements are more lenient than monit: `pidfile` may come anywhere in its check block, not
//! only right after the name, and a repeated `start`, `stop` or `restart` program replaces the
//! earlier one, as monit's `addcommand` does.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::monit::lex::{self, Token, TokenKind};
use crate::monit::{
    Action, Alert, Condition, Connection, Endpoint, Kind, Limit, Mode, MonitFile, Operator,
    Program, Rate, Reason, Recovery, Resource, Service, SocketType, Test, Unsupported,
};

/// Why a monit file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `"` or `'` is never closed.
    #[error("line {line}: unterminated quote")]
    UnterminatedQuote {
        /// Where the quote opens.
        line: usize,
    },
    /// A `{` is never closed.
    #[error("line {line}: unterminated brace")]
    UnterminatedBrace {
        /// Where the brace opens.
        line: usize,
    },
    /// `check <kind>` is not followed by a service name.
    #[error("line {line}: check {kind} without a name")]
    MissingName {
        /// The line of `check`.
        line: usize,
        /// The kind of check.
        kind: Kind,
    },
    /// A statement keyword is not followed by its mandatory argument.
    #[error("line {line}: {keyword} without {what}")]
    MissingArgument {
        /// The line of the keyword.
        line: usize,
        /// The keyword, e.g. `pidfile` or `start program`.
        keyword: &'static str,
        /// What should follow it, e.g. `a path`.
        what: &'static str,
    },
    /// A `check process` block names no pidfile (nor a `matching` pattern).
    #[error("line {line}: check process {service} has no pidfile")]
    MissingPidfile {
        /// The line of `check`.
        line: usize,
        /// The service.
        service: String,
    },
    /// Two checks have the same name.
    #[error("line {line}: service {service} is already checked on line {first_line}")]
    DuplicateService {
        /// The line of the second `check`.
        line: usize,
        /// The service.
        service: String,
        /// The line of the first `check`.
        first_line: usize,
    },
}

/// The result of parsing.
pub type Result<T> = std::result::Result<T, Error>;

/// Parses the text of one monit file.
pub fn parse(text: &str) -> Result<MonitFile> {
    let tokens = lex::lex(text)?;
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
    };
    let mut statements = Vec::new();
    while parser.skip_noise() {
        parser.statement(&mut statements)?;
    }
    assemble(statements)
}

/// Words monit's lexer drops wherever they appear outside names and command lines.
const NOISE: &[&str] = &[
    "is", "as", "are", "for", "via", "on", "only", "with", "within", "without", "program",
    "programs", "and", "has", "using", "use", "the", "to", "sum", "than", "usage", "was", "times",
    "but", "of", "or", "does", "per", "in", "last", "rate", "capacity", "activity", "option",
    "options",
];

/// One statement, before it is attached to its service.
#[derive(Debug)]
struct Statement {
    line: usize,
    text: String,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Check { kind: Kind, name: String },
    Pidfile(String),
    Path(String),
    Address(String),
    Matching,
    Start(Program),
    Stop(Program),
    Restart(Program),
    Group(String),
    DependsOn(Vec<String>),
    Mode(Mode),
    Every(u32),
    Test(Box<Test>),
    Alert { alert: Alert, has_extras: bool },
    Set,
    Include,
    Unsupported,
}

struct Parser<'t, 'a> {
    tokens: &'t [Token<'a>],
    pos: usize,
}

impl<'t, 'a> Parser<'t, 'a> {
    /// Parses the statement at `pos` (not a noise word) and appends it to `out`.
    fn statement(&mut self, out: &mut Vec<Statement>) -> Result<()> {
        let tokens = self.tokens;
        let start = self.pos;
        let token = &tokens[start];
        let line = token.line;
        let keyword = if token.kind == TokenKind::Word {
            token.lower.as_str()
        } else {
            ""
        };
        let body = match keyword {
            "check" => return self.check(out),
            "set" => {
                // `set` takes the next word whatever it is (`set alert`, `set pidfile`), then runs
                // to the next statement.
                self.pos = (self.pos + 2).min(tokens.len());
                self.skip_to_statement();
                Body::Set
            }
            "include" => {
                self.pos = (self.pos + 2).min(tokens.len());
                Body::Include
            }
            "pidfile" => Body::Pidfile(self.argument("pidfile", "a path")?),
            "path" => Body::Path(self.argument("path", "a path")?),
            "address" => Body::Address(self.argument("address", "an address")?),
            "interface" => Body::Address(self.argument("interface", "a name")?),
            "matching" => {
                self.argument("matching", "a pattern")?;
                Body::Matching
            }
            "start" => Body::Start(self.program("start program")?),
            "stop" => Body::Stop(self.program("stop program")?),
            "restart" => Body::Restart(self.program("restart program")?),
            "group" => Body::Group(self.argument("group", "a name")?),
            "depend" | "depends" => Body::DependsOn(self.depends_on()?),
            "mode" => match self
                .argument("mode", "active, passive or manual")?
                .to_ascii_lowercase()
                .as_str()
            {
                "active" => Body::Mode(Mode::Active),
                "passive" => Body::Mode(Mode::Passive),
                "manual" => Body::Mode(Mode::Manual),
                _ => Body::Unsupported,
            },
            "every" => self.every()?,
            "if" => self.test(),
            "alert" | "noalert" => self.alert()?,
            _ => {
                self.pos += 1;
                self.skip_to_statement();
                Body::Unsupported
            }
        };
        let text = self.text(start, self.pos);
        out.push(Statement { line, text, body });
        Ok(())
    }

    /// `check <kind> <name>`, then the options that belong to the check itself (`with pidfile`,
    /// `path`, `address`, `matching`), each appended as a statement of its own.
    fn check(&mut self, out: &mut Vec<Statement>) -> Result<()> {
        let start = self.pos;
        let line = self.tokens[start].line;
        self.pos += 1;
        // Monit reads `check <name>` without a kind as a process check.
        let kind = self
            .tokens
            .get(self.pos)
            .filter(|t| t.kind == TokenKind::Word)
            .and_then(|t| match t.lower.as_str() {
                "process" => Some(Kind::Process),
                "file" => Some(Kind::File),
                "fifo" => Some(Kind::Fifo),
                "directory" => Some(Kind::Directory),
                "filesystem" | "device" => Some(Kind::Filesystem),
                "host" => Some(Kind::Host),
                "system" => Some(Kind::System),
                "program" => Some(Kind::Program),
                "network" => Some(Kind::Network),
                _ => None,
            });
        if kind.is_some() {
            self.pos += 1;
        }
        let kind = kind.unwrap_or(Kind::Process);
        let name = self.name().ok_or(Error::MissingName { line, kind })?;
        let mut options = Vec::new();
        loop {
            let before = self.pos;
            self.skip_noise();
            let is_option = self.tokens.get(self.pos).is_some_and(|t| {
                ["pidfile", "path", "address", "interface", "matching"]
                    .iter()
                    .any(|&option| t.is(option))
            });
            if !is_option {
                self.pos = before;
                break;
            }
            self.statement(&mut options)?;
        }
        out.push(Statement {
            line,
            text: self.text(start, self.pos),
            body: Body::Check { kind, name },
        });
        out.extend(options);
        Ok(())
    }

    /// The mandatory argument of the keyword at `pos`: the next word or string, unless that is a
    /// statement keyword.
    fn argument(&mut self, keyword: &'static str, what: &'static str) -> Result<String> {
        let line = self.tokens[self.pos].line;
        self.pos += 1;
        self.skip_noise();
        self.name().ok_or(Error::MissingArgument {
            line,
            keyword,
            what,
        })
    }

    /// A name at `pos` (a word that starts no statement, or a string), taken as written.
    fn name(&mut self) -> Option<String> {
        let token = self.tokens.get(self.pos)?;
        let is_name = match token.kind {
            TokenKind::Word => !self.starts_statement(self.pos),
            TokenKind::Quoted => true,
            TokenKind::Command { .. } | TokenKind::Block => false,
        };
        if !is_name {
            return None;
        }
        self.pos += 1;
        Some(token.text.clone())
    }

    /// `start|stop|restart [program] "<command>" [as uid <u>] [and gid <g>] [with timeout <n>
    /// seconds]`, with `pos` at the keyword; also `exec` in an action.
    fn program(&mut self, keyword: &'static str) -> Result<Program> {
        let line = self.tokens[self.pos].line;
        self.pos += 1;
        let missing = Error::MissingArgument {
            line,
            keyword,
            what: "a command",
        };
        let (command, argv) = match self.tokens.get(self.pos) {
            Some(Token {
                kind: TokenKind::Command { argv },
                text,
                ..
            }) => {
                self.pos += 1;
                (text.clone(), argv.clone())
            }
            // Without double quotes monit takes each word or string as one argument: a
            // single-quoted command line is a single argv[0], as monit would exec it.
            _ => {
                let mut argv = Vec::new();
                loop {
                    let before = self.pos;
                    if !self.skip_noise() {
                        break;
                    }
                    let token = &self.tokens[self.pos];
                    let is_argument = match token.kind {
                        TokenKind::Quoted => true,
                        TokenKind::Word => {
                            !self.starts_statement(self.pos)
                                && !["uid", "gid", "timeout"].iter().any(|&w| token.is(w))
                        }
                        _ => false,
                    };
                    if !is_argument {
                        self.pos = before;
                        break;
                    }
                    argv.push(token.text.clone());
                    self.pos += 1;
                }
                (argv.join(" "), argv)
            }
        };
        if argv.is_empty() {
            return Err(missing);
        }
        let mut program = Program {
            command,
            argv,
            uid: None,
            gid: None,
            timeout_secs: None,
        };
        loop {
            let before = self.pos;
            self.skip_noise();
            match self.tokens.get(self.pos).map(|t| t.lower.as_str()) {
                Some("uid") => program.uid = Some(self.argument("uid", "a user")?),
                Some("gid") => program.gid = Some(self.argument("gid", "a group")?),
                Some("timeout") => {
                    let line = self.tokens[self.pos].line;
                    self.pos += 1;
                    self.skip_noise();
                    let seconds = self.tokens.get(self.pos).and_then(number).ok_or(
                        Error::MissingArgument {
                            line,
                            keyword: "timeout",
                            what: "a number of seconds",
                        },
                    )?;
                    self.pos += 1;
                    if self
                        .tokens
                        .get(self.pos)
                        .is_some_and(|t| ["s", "second", "seconds"].iter().any(|&w| t.is(w)))
                    {
                        self.pos += 1;
                    }
                    program.timeout_secs = Some(seconds);
                }
                _ => {
                    self.pos = before;
                    return Ok(program);
                }
            }
        }
    }

    /// `depends on <a>[, <b> ...]`: the list goes on while commas separate the names.
    fn depends_on(&mut self) -> Result<Vec<String>> {
        let line = self.tokens[self.pos].line;
        self.pos += 1;
        if self.tokens.get(self.pos).is_some_and(|t| t.is("on")) {
            self.pos += 1;
        }
        let first = self.name().ok_or(Error::MissingArgument {
            line,
            keyword: "depends on",
            what: "a service name",
        })?;
        let mut names = vec![first];
        while self.tokens.get(self.pos).is_some_and(|t| t.is_after_comma) {
            match self.name() {
                Some(name) => names.push(name),
                None => break,
            }
        }
        Ok(names)
    }

    /// `every <n> cycles`; the cron forms of later monit versions are unsupported.
    fn every(&mut self) -> Result<Body> {
        let tokens = self.tokens;
        let line = tokens[self.pos].line;
        self.pos += 1;
        let Some(token) = tokens
            .get(self.pos)
            .filter(|_| !self.starts_statement(self.pos))
        else {
            return Err(Error::MissingArgument {
                line,
                keyword: "every",
                what: "a number of cycles",
            });
        };
        let cycles = number(token).and_then(|n| u32::try_from(n).ok());
        self.pos += 1;
        let Some(cycles) = cycles.filter(|&n| n > 0) else {
            return Ok(Body::Unsupported);
        };
        if self.tokens.get(self.pos).is_some_and(is_cycles) {
            self.pos += 1;
        }
        Ok(Body::Every(cycles))
    }

    /// `if <condition> [rate] then <action> [else if recovered [rate] then <action>]`. Whatever
    /// does not parse is unsupported, up to the next statement.
    fn test(&mut self) -> Body {
        let line = self.tokens[self.pos].line;
        self.pos += 1;
        let test = self.test_parts(line);
        if test.is_none() {
            self.skip_to_statement();
        }
        test.map_or(Body::Unsupported, |test| Body::Test(Box::new(test)))
    }

    fn test_parts(&mut self, line: usize) -> Option<Test> {
        let condition = self.until_then()?;
        let action = self.action()?;
        let (condition, rate) = parse_condition(&condition)?;
        let mut recovery = None;
        let before = self.pos;
        self.skip_noise();
        if self.tokens.get(self.pos).is_some_and(|t| t.is("else")) {
            self.pos += 1;
            if !self.tokens.get(self.pos).is_some_and(|t| t.is("if")) {
                return None;
            }
            self.pos += 1;
            // The action is read before the words are checked, so that a test that does not
            // parse is unsupported up to its end.
            let words = self.until_then()?;
            let action = self.action()?;
            let (event, rate_words) = words.split_first()?;
            if !["recovered", "passed", "succeeded"]
                .iter()
                .any(|&w| event.is(w))
            {
                return None;
            }
            let rate = parse_rate(rate_words)?;
            recovery = Some(Recovery { rate, action });
        } else {
            self.pos = before;
        }
        Some(Test {
            condition,
            rate,
            action,
            recovery,
            line,
        })
    }

    /// The significant tokens from `pos` to the next `then`, leaving `pos` after it; `None` when a
    /// statement starts first.
    fn until_then(&mut self) -> Option<Vec<&'t Token<'a>>> {
        let mut words = Vec::new();
        loop {
            let token = self.tokens.get(self.pos)?;
            if token.is("then") {
                self.pos += 1;
                return Some(words);
            }
            if self.starts_statement(self.pos) {
                return None;
            }
            if !is_noise(token) {
                words.push(token);
            }
            self.pos += 1;
        }
    }

    /// The action after `then`.
    fn action(&mut self) -> Option<Action> {
        self.skip_noise();
        let token = self.tokens.get(self.pos)?;
        let action = match token.lower.as_str() {
            "alert" => Action::Alert,
            "restart" => Action::Restart,
            "start" => Action::Start,
            "stop" => Action::Stop,
            // Monit implements a restart limit's `timeout` as unmonitor.
            "unmonitor" | "timeout" => Action::Unmonitor,
            "exec" | "execute" => return self.program("exec").ok().map(Action::Exec),
            _ => return None,
        };
        self.pos += 1;
        Some(action)
    }

    /// `alert <address> [[not] { <events> }] [with mail-format { ... }] [with reminder on <n>
    /// cycles]` or `noalert <address>`.
    fn alert(&mut self) -> Result<Body> {
        let is_noalert = self.tokens[self.pos].is("noalert");
        let line = self.tokens[self.pos].line;
        let keyword = if is_noalert { "noalert" } else { "alert" };
        let recipient = self.argument(keyword, "an address")?;
        if !recipient.contains('@') {
            self.skip_to_statement();
            return Ok(Body::Unsupported);
        }
        let mut alert = Alert {
            recipient,
            is_noalert,
            events: Vec::new(),
            is_events_excluded: false,
            line,
        };
        // `noalert` takes only the address.
        let has_extras = !is_noalert && self.alert_options(&mut alert);
        Ok(Body::Alert { alert, has_extras })
    }

    /// The options after `alert <address>`; says whether there was a `mail-format` or `reminder`,
    /// which the supervisor ignores.
    fn alert_options(&mut self, alert: &mut Alert) -> bool {
        let mut has_extras = false;
        loop {
            let before = self.pos;
            self.skip_noise();
            let Some(token) = self.tokens.get(self.pos) else {
                self.pos = before;
                return has_extras;
            };
            match (&token.kind, token.lower.as_str()) {
                (TokenKind::Word, "not") => alert.is_events_excluded = true,
                (TokenKind::Block, _) => {
                    alert.events = token
                        .text
                        .split(|c: char| c.is_whitespace() || c == ',')
                        .filter(|event| !event.is_empty())
                        .map(str::to_ascii_lowercase)
                        .collect();
                }
                (TokenKind::Word, "mail-format") => {
                    has_extras = true;
                    if self
                        .tokens
                        .get(self.pos + 1)
                        .is_some_and(|t| t.kind == TokenKind::Block)
                    {
                        self.pos += 1;
                    }
                }
                (TokenKind::Word, "reminder") => {
                    has_extras = true;
                    self.pos += 1;
                    self.skip_noise();
                    if self.tokens.get(self.pos).and_then(number).is_some() {
                        self.pos += 1;
                        if self.tokens.get(self.pos).is_some_and(is_cycles) {
                            self.pos += 1;
                        }
                    }
                    continue;
                }
                _ => {
                    self.pos = before;
                    return has_extras;
                }
            }
            self.pos += 1;
        }
    }

    /// Moves `pos` past noise words; says whether a token remains.
    fn skip_noise(&mut self) -> bool {
        while let Some(token) = self.tokens.get(self.pos) {
            if !is_noise(token) {
                return true;
            }
            self.pos += 1;
        }
        false
    }

    /// Moves `pos` to the next token that starts a statement, or to the end.
    fn skip_to_statement(&mut self) {
        while self.pos < self.tokens.len() && !self.starts_statement(self.pos) {
            self.pos += 1;
        }
    }

    /// Whether the token at `index` starts a statement. `start`, `stop` and `restart` do only when
    /// a command follows, since they are also actions (`then restart`) and words of `set daemon`.
    fn starts_statement(&self, index: usize) -> bool {
        let token = &self.tokens[index];
        if token.kind != TokenKind::Word {
            return false;
        }
        match token.lower.as_str() {
            "check" | "set" | "include" | "if" | "group" | "depend" | "depends" | "mode"
            | "every" | "alert" | "noalert" | "pidfile" => true,
            "start" | "stop" | "restart" => {
                self.tokens
                    .get(index + 1)
                    .is_some_and(|next| match next.kind {
                        TokenKind::Command { .. } | TokenKind::Quoted => true,
                        TokenKind::Word => next.is("program") || next.text.starts_with('/'),
                        TokenKind::Block => false,
                    })
            }
            _ => false,
        }
    }

    /// The tokens `from..to` as written, one space apart (a comma where the file had one).
    fn text(&self, from: usize, to: usize) -> String {
        let mut text = String::new();
        for (index, token) in self.tokens[from..to].iter().enumerate() {
            if index > 0 {
                text.push_str(if token.is_after_comma { ", " } else { " " });
            }
            text.push_str(token.source);
        }
        text
    }
}

/// Parses the significant words of a condition and its rate.
fn parse_condition(words: &[&Token<'_>]) -> Option<(Condition, Option<Rate>)> {
    let (first, rest) = words.split_first()?;
    match first.lower.as_str() {
        "failed" => parse_connection(rest),
        "not"
            if rest
                .first()
                .is_some_and(|t| t.is("exist") || t.is("exists")) =>
        {
            Some((Condition::DoesNotExist, parse_rate(&rest[1..])?))
        }
        "nonexist" | "nonexists" => Some((Condition::DoesNotExist, parse_rate(rest)?)),
        _ if number(first).is_some() => {
            // `<n> restarts within <m> cycles`, with `within` dropped as noise.
            let [restart, cycles, cycle_word] = rest else {
                return None;
            };
            if !(restart.is("restart") || restart.is("restarts")) || !is_cycles(cycle_word) {
                return None;
            }
            let restarts = u32::try_from(number(first)?).ok()?;
            let cycles = u32::try_from(number(cycles)?).ok()?;
            (restarts > 0 && cycles > 0).then_some((Condition::Restarts { restarts, cycles }, None))
        }
        _ => parse_resource(words),
    }
}

/// `[host <h>] port <n> | unixsocket <path>`, then `type`, `protocol`, `request`, `timeout`,
/// `retry` and the rate, in any order.
fn parse_connection(words: &[&Token<'_>]) -> Option<(Condition, Option<Rate>)> {
    let mut host = None;
    let mut port = None;
    let mut unix_socket = None;
    let mut connection = Connection {
        endpoint: Endpoint::Port {
            host: None,
            port: 0,
        },
        socket_type: SocketType::Tcp,
        protocol: None,
        request: None,
        timeout_secs: None,
        retries: None,
    };
    let mut rate = None;
    let mut index = 0;
    while let Some(word) = words.get(index) {
        let value = words.get(index + 1);
        match word.lower.as_str() {
            "host" => host = Some(value?.text.clone()),
            "port" | "portnumber" => port = Some(u16::try_from(number(value?)?).ok()?),
            "unixsocket" | "unix" => unix_socket = Some(PathBuf::from(&value?.text)),
            "type" => {
                connection.socket_type = match value?.lower.as_str() {
                    "tcp" => SocketType::Tcp,
                    "tcpssl" => SocketType::TcpSsl,
                    "udp" => SocketType::Udp,
                    _ => return None,
                }
            }
            "protocol" | "proto" => connection.protocol = Some(value?.text.to_ascii_lowercase()),
            "request" => connection.request = Some(value?.text.clone()),
            "retry" => connection.retries = Some(u32::try_from(number(value?)?).ok()?),
            "timeout" => {
                connection.timeout_secs = Some(number(value?)?);
                if words
                    .get(index + 2)
                    .is_some_and(|t| ["s", "second", "seconds"].iter().any(|&w| t.is(w)))
                {
                    index += 1;
                }
            }
            _ if number(word).is_some() => {
                rate = parse_rate(&words[index..])?;
                break;
            }
            _ => return None,
        }
        index += 2;
    }
    connection.endpoint = match (unix_socket, port) {
        (Some(path), None) if host.is_none() => Endpoint::UnixSocket(path),
        (None, Some(port)) => Endpoint::Port { host, port },
        _ => return None,
    };
    Some((Condition::Connection(connection), rate))
}

/// `<resource> [<operator>] <value> [<unit>]` and the rate.
fn parse_resource(words: &[&Token<'_>]) -> Option<(Condition, Option<Rate>)> {
    let (resource, rest) = match words {
        [total, what, rest @ ..] if total.is("total") => {
            let resource = match what.lower.as_str() {
                "cpu" => Resource::TotalCpu,
                "mem" | "memory" => Resource::TotalMemory,
                _ => return None,
            };
            (resource, rest)
        }
        [what, rest @ ..] => {
            let resource = match what.lower.as_str() {
                "cpu" => Resource::Cpu,
                "totalcpu" => Resource::TotalCpu,
                "mem" | "memory" => Resource::Memory,
                "totalmem" | "totalmemory" => Resource::TotalMemory,
                "children" | "child" => Resource::Children,
                _ => return None,
            };
            (resource, rest)
        }
        [] => return None,
    };
    // Without an operator monit compares for equality.
    let (operator, rest) = rest
        .split_first()
        .and_then(|(word, after)| Some((operator(word)?, after)))
        .unwrap_or((Operator::Equal, rest));
    let (value, rest) = rest.split_first()?;
    let (amount, suffix) = split_number(&value.lower)?;
    let (unit, rest) = match (suffix, rest.split_first()) {
        ("", Some((word, after))) if unit(&word.lower).is_some() => (unit(&word.lower), after),
        ("", _) => (None, rest),
        (suffix, _) => (Some(unit(suffix)?), rest),
    };
    let limit = match (resource, unit) {
        (_, Some(Unit::Percent)) if resource != Resource::Children => Limit::Percent(amount),
        (Resource::Memory | Resource::TotalMemory, Some(Unit::Bytes(multiplier))) => {
            // Memory limits are whole bytes; `as` saturates on absurd values.
            Limit::Bytes((amount * multiplier as f64).round() as u64)
        }
        (Resource::Children, None) if amount.fract() == 0.0 => Limit::Count(amount as u64),
        _ => return None,
    };
    Some((
        Condition::Resource {
            resource,
            operator,
            limit,
        },
        parse_rate(rest)?,
    ))
}

/// `[<events>] <cycles> cycles` (`for 3 cycles`, `2 times within 3 cycles`); `Some(None)` when
/// there is none, `None` when it does not parse.
fn parse_rate(words: &[&Token<'_>]) -> Option<Option<Rate>> {
    let (events, cycles) = match words {
        [] => return Some(None),
        [cycles, word] if is_cycles(word) => {
            let cycles = number(cycles)?;
            (cycles, cycles)
        }
        [events, cycles, word] if is_cycles(word) => (number(events)?, number(cycles)?),
        _ => return None,
    };
    let events = u32::try_from(events).ok()?;
    let cycles = u32::try_from(cycles).ok()?;
    (events > 0 && events <= cycles).then_some(Some(Rate { events, cycles }))
}

/// The unit after a resource value.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Percent,
    Bytes(u64),
}

fn unit(word: &str) -> Option<Unit> {
    Some(match word {
        "%" | "percent" => Unit::Percent,
        "b" | "byte" | "bytes" => Unit::Bytes(1),
        "kb" | "kilobyte" | "kilobytes" => Unit::Bytes(1 << 10),
        "mb" | "megabyte" | "megabytes" => Unit::Bytes(1 << 20),
        "gb" | "gigabyte" | "gigabytes" => Unit::Bytes(1 << 30),
        _ => return None,
    })
}

fn operator(word: &Token<'_>) -> Option<Operator> {
    Some(match word.lower.as_str() {
        ">" | "gt" | "greater" | "more" => Operator::Greater,
        ">=" | "ge" => Operator::GreaterOrEqual,
        "<" | "lt" | "less" => Operator::Less,
        "<=" | "le" => Operator::LessOrEqual,
        "=" | "==" | "eq" | "equal" => Operator::Equal,
        "!=" | "ne" | "notequal" => Operator::NotEqual,
        _ => return None,
    })
}

/// Splits `1000mb` into `1000.0` and `mb`; `None` when it does not start with a number.
fn split_number(word: &str) -> Option<(f64, &str)> {
    let end = word
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(word.len());
    let amount = word[..end].parse().ok()?;
    Some((amount, &word[end..]))
}

/// The unsigned integer a word spells.
fn number(token: &Token<'_>) -> Option<u64> {
    if token.kind != TokenKind::Word || !token.text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.text.parse().ok()
}

fn is_cycles(token: &Token<'_>) -> bool {
    token.is("cycle") || token.is("cycles")
}

fn is_noise(token: &Token<'_>) -> bool {
    token.kind == TokenKind::Word && NOISE.contains(&token.lower.as_str())
}

/// Attaches the statements to their services.
fn assemble(statements: Vec<Statement>) -> Result<MonitFile> {
    let mut file = MonitFile::default();
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    let mut current: Option<Block> = None;
    for Statement { line, text, body } in statements {
        let unsupported = |reason: Reason, service: Option<&Block>| Unsupported {
            line,
            text: text.clone(),
            service: service.map(|block| block.service.name.clone()),
            reason,
        };
        match body {
            Body::Check { kind, name } => {
                if let Some(block) = current.take() {
                    file.services.push(block.finish()?);
                }
                if let Some(&first_line) = first_lines.get(&name) {
                    return Err(Error::DuplicateService {
                        line,
                        service: name,
                        first_line,
                    });
                }
                first_lines.insert(name.clone(), line);
                let block = Block::new(kind, name, line);
                if kind != Kind::Process {
                    file.unsupported
                        .push(unsupported(Reason::Check(kind), Some(&block)));
                }
                current = Some(block);
            }
            Body::Set => {
                // `set` is a statement of its own in monit's grammar: it ends the service.
                if let Some(block) = current.take() {
                    file.services.push(block.finish()?);
                }
                file.unsupported.push(unsupported(Reason::Global, None));
            }
            Body::Include => {
                // Monit includes files where the statement stands; the parser does no IO.
                file.unsupported
                    .push(unsupported(Reason::Global, current.as_ref()));
            }
            body => {
                let Some(block) = current.as_mut() else {
                    file.unsupported
                        .push(unsupported(Reason::OutsideCheck, None));
                    continue;
                };
                if !block.apply(body) {
                    file.unsupported
                        .push(unsupported(Reason::Statement, Some(&*block)));
                }
            }
        }
    }
    if let Some(block) = current {
        file.services.push(block.finish()?);
    }
    Ok(file)
}

/// A service being assembled.
struct Block {
    service: Service,
    has_matching: bool,
}

impl Block {
    fn new(kind: Kind, name: String, line: usize) -> Self {
        Block {
            service: Service {
                name,
                kind,
                pidfile: None,
                target: None,
                start: None,
                stop: None,
                restart: None,
                groups: Vec::new(),
                depends_on: Vec::new(),
                mode: Mode::Active,
                every_cycles: None,
                tests: Vec::new(),
                alerts: Vec::new(),
                line,
            },
            has_matching: false,
        }
    }

    /// Applies a service statement; `false` when the service cannot honour it, to be reported.
    fn apply(&mut self, body: Body) -> bool {
        let service = &mut self.service;
        let is_process = service.kind == Kind::Process;
        match body {
            // Monit accepts `path` as the pidfile of a process check.
            Body::Pidfile(path) | Body::Path(path) if is_process => {
                service.pidfile = Some(PathBuf::from(path));
            }
            Body::Path(target) | Body::Address(target) if !is_process => {
                service.target = Some(target);
            }
            Body::Matching => {
                // Finding a process by its command line is not supported; only pidfiles are.
                self.has_matching = is_process;
                return false;
            }
            Body::Start(program) => service.start = Some(program),
            Body::Stop(program) => service.stop = Some(program),
            Body::Restart(program) => service.restart = Some(program),
            Body::Group(group) => {
                if !service.groups.contains(&group) {
                    service.groups.push(group);
                }
            }
            Body::DependsOn(names) => {
                for name in names {
                    if !service.depends_on.contains(&name) {
                        service.depends_on.push(name);
                    }
                }
            }
            Body::Mode(mode) => service.mode = mode,
            Body::Every(cycles) => service.every_cycles = Some(cycles),
            Body::Test(test) => service.tests.push(*test),
            Body::Alert { alert, has_extras } => {
                service.alerts.push(alert);
                // The agent writes its own alerts: mail formats and reminders do not apply.
                return !has_extras;
            }
            Body::Pidfile(_)
            | Body::Path(_)
            | Body::Address(_)
            | Body::Check { .. }
            | Body::Set
            | Body::Include
            | Body::Unsupported => return false,
        }
        true
    }

    fn finish(self) -> Result<Service> {
        let service = self.service;
        if service.kind == Kind::Process && service.pidfile.is_none() && !self.has_matching {
            return Err(Error::MissingPidfile {
                line: service.line,
                service: service.name,
            });
        }
        Ok(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROCESS: &str = "check process p with pidfile /var/vcap/sys/run/p.pid\n";

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/monit/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    fn program(command: &str, argv: &[&str]) -> Program {
        Program {
            command: command.to_owned(),
            argv: argv.iter().map(|&word| word.to_owned()).collect(),
            uid: None,
            gid: None,
            timeout_secs: None,
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|&item| item.to_owned()).collect()
    }

    /// Parses `body` inside the process check `p` and returns the service and what was unsupported,
    /// as `(line, text, reason)`.
    fn in_process(body: &str) -> (Service, Vec<(usize, String, Reason)>) {
        let file = parse(&format!("{PROCESS}{body}")).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(file.services.len(), 1, "{body}");
        let unsupported = file
            .unsupported
            .into_iter()
            .map(|entry| (entry.line, entry.text, entry.reason))
            .collect();
        (file.services.into_iter().next().unwrap(), unsupported)
    }

    fn only_test(body: &str) -> Test {
        let (service, unsupported) = in_process(body);
        assert_eq!(unsupported, [], "{body}");
        assert_eq!(service.tests.len(), 1, "{body}");
        service.tests.into_iter().next().unwrap()
    }

    #[test]
    fn bpm_job_fixture_is_one_process_in_group_vcap() {
        let file = parse(&fixture("nats.monit")).unwrap();
        assert_eq!(
            file,
            MonitFile {
                services: vec![Service {
                    name: "nats".to_owned(),
                    kind: Kind::Process,
                    pidfile: Some(PathBuf::from("/var/vcap/sys/run/bpm/nats/nats.pid")),
                    target: None,
                    start: Some(program(
                        "/var/vcap/jobs/bpm/bin/bpm start nats",
                        &["/var/vcap/jobs/bpm/bin/bpm", "start", "nats"],
                    )),
                    stop: Some(program(
                        "/var/vcap/jobs/bpm/bin/bpm stop nats",
                        &["/var/vcap/jobs/bpm/bin/bpm", "stop", "nats"],
                    )),
                    restart: None,
                    groups: strings(&["vcap"]),
                    depends_on: Vec::new(),
                    mode: Mode::Active,
                    every_cycles: None,
                    tests: Vec::new(),
                    alerts: Vec::new(),
                    line: 1,
                }],
                unsupported: Vec::new(),
            }
        );
    }

    #[test]
    fn two_process_fixture_keeps_order_dependencies_users_and_timeouts() {
        let file = parse(&fixture("director.monit")).unwrap();
        assert_eq!(file.unsupported, []);
        let [director, worker] = file.services.as_slice() else {
            panic!("expected two services, got {:?}", file.services);
        };
        assert_eq!((director.name.as_str(), director.line), ("director", 1));
        assert_eq!(director.depends_on, Vec::<String>::new());
        assert_eq!((worker.name.as_str(), worker.line), ("worker_1", 7));
        assert_eq!(worker.depends_on, strings(&["director"]));
        assert_eq!(worker.groups, strings(&["vcap"]));
        assert_eq!(
            worker.start,
            Some(Program {
                uid: Some("vcap".to_owned()),
                gid: Some("vcap".to_owned()),
                ..program(
                    "/var/vcap/jobs/director/bin/worker_ctl start 1",
                    &["/var/vcap/jobs/director/bin/worker_ctl", "start", "1"],
                )
            })
        );
        assert_eq!(
            worker.stop,
            Some(Program {
                timeout_secs: Some(300),
                ..program(
                    "/var/vcap/jobs/director/bin/worker_ctl stop 1",
                    &["/var/vcap/jobs/director/bin/worker_ctl", "stop", "1"],
                )
            })
        );
    }

    #[test]
    fn resource_fixture_types_its_tests_and_reports_the_rest() {
        let file = parse(&fixture("cloud_controller_ng.monit")).unwrap();
        let service = &file.services[0];
        let tests: Vec<_> = service
            .tests
            .iter()
            .map(|test| {
                (
                    test.line,
                    test.condition.clone(),
                    test.rate,
                    test.action.clone(),
                )
            })
            .collect();
        assert_eq!(
            tests,
            [
                (
                    6,
                    Condition::Resource {
                        resource: Resource::TotalMemory,
                        operator: Operator::Greater,
                        limit: Limit::Bytes(1000 << 20),
                    },
                    Some(Rate {
                        events: 3,
                        cycles: 3
                    }),
                    Action::Restart,
                ),
                (
                    7,
                    Condition::Connection(Connection {
                        endpoint: Endpoint::Port {
                            host: Some("127.0.0.1".to_owned()),
                            port: 9022,
                        },
                        socket_type: SocketType::Tcp,
                        protocol: Some("http".to_owned()),
                        request: Some("/healthz".to_owned()),
                        timeout_secs: Some(60),
                        retries: None,
                    }),
                    Some(Rate {
                        events: 5,
                        cycles: 5
                    }),
                    Action::Restart,
                ),
                (
                    11,
                    Condition::Resource {
                        resource: Resource::Cpu,
                        operator: Operator::Greater,
                        limit: Limit::Percent(90.0),
                    },
                    Some(Rate {
                        events: 10,
                        cycles: 10
                    }),
                    Action::Alert,
                ),
                (
                    12,
                    Condition::Resource {
                        resource: Resource::TotalMemory,
                        operator: Operator::Greater,
                        limit: Limit::Bytes(3 << 30),
                    },
                    None,
                    Action::Exec(Program {
                        uid: Some("vcap".to_owned()),
                        ..program(
                            "/var/vcap/jobs/cloud_controller_ng/bin/dump_heap",
                            &["/var/vcap/jobs/cloud_controller_ng/bin/dump_heap"],
                        )
                    }),
                ),
                (
                    13,
                    Condition::Restarts {
                        restarts: 5,
                        cycles: 5
                    },
                    None,
                    Action::Unmonitor,
                ),
            ]
        );
        assert_eq!(
            file.unsupported,
            [Unsupported {
                line: 14,
                text: "if changed pid then alert".to_owned(),
                service: Some("cloud_controller_ng".to_owned()),
                reason: Reason::Statement,
            }]
        );
    }

    #[test]
    fn odd_fixture_with_case_spacing_comments_and_other_checks_parses_like_monit() {
        let file = parse(&fixture("odd.monit")).unwrap();
        let names: Vec<_> = file
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.kind, s.line))
            .collect();
        assert_eq!(
            names,
            [
                ("worker", Kind::Process, 4),
                ("config", Kind::File, 22),
                ("worker_config", Kind::Process, 26),
            ]
        );
        let worker = &file.services[0];
        assert_eq!(
            worker.pidfile,
            Some(PathBuf::from("/var/vcap/sys/run/worker/worker.pid"))
        );
        assert_eq!(
            worker.start,
            Some(Program {
                uid: Some("vcap".to_owned()),
                gid: Some("vcap".to_owned()),
                timeout_secs: Some(120),
                ..program(
                    "/var/vcap/jobs/worker/bin/worker_ctl start",
                    &["/var/vcap/jobs/worker/bin/worker_ctl", "start"],
                )
            })
        );
        assert_eq!(
            worker.stop.as_ref().map(|stop| stop.argv.clone()),
            Some(strings(&["/var/vcap/jobs/worker/bin/worker_ctl", "stop"]))
        );
        assert_eq!(worker.groups, strings(&["vcap"]));
        assert_eq!(worker.mode, Mode::Manual);
        assert_eq!(worker.every_cycles, Some(2));
        assert_eq!(worker.depends_on, strings(&["config", "worker_config"]));
        assert_eq!(
            worker.tests,
            [Test {
                condition: Condition::Resource {
                    resource: Resource::TotalMemory,
                    operator: Operator::Greater,
                    limit: Limit::Bytes(2_684_354_560),
                },
                rate: Some(Rate {
                    events: 3,
                    cycles: 5
                }),
                action: Action::Restart,
                recovery: None,
                line: 16,
            }]
        );
        assert_eq!(
            worker.alerts,
            [
                Alert {
                    recipient: "ops@example.com".to_owned(),
                    is_noalert: false,
                    events: strings(&["timeout", "nonexist"]),
                    is_events_excluded: false,
                    line: 19,
                },
                Alert {
                    recipient: "agent@local".to_owned(),
                    is_noalert: true,
                    events: Vec::new(),
                    is_events_excluded: false,
                    line: 20,
                },
            ]
        );

        let config = &file.services[1];
        assert_eq!(
            config.target.as_deref(),
            Some("/var/vcap/jobs/worker/config/worker.yml")
        );
        assert_eq!(config.groups, strings(&["vcap"]));

        let worker_config = &file.services[2];
        assert_eq!(
            worker_config.start.as_ref().map(|start| start.argv.clone()),
            Some(strings(&[
                "/bin/sh",
                "-c",
                "exec /var/vcap/jobs/worker/bin/config_server >> /var/vcap/sys/log/worker/config.log 2>&1",
            ]))
        );
        assert_eq!(worker_config.groups, strings(&["vcap"]));
        assert_eq!(
            worker_config.tests,
            [Test {
                condition: Condition::Connection(Connection {
                    endpoint: Endpoint::UnixSocket(PathBuf::from(
                        "/var/vcap/sys/run/worker/config.sock"
                    )),
                    socket_type: SocketType::Tcp,
                    protocol: None,
                    request: None,
                    timeout_secs: None,
                    retries: None,
                }),
                rate: None,
                action: Action::Restart,
                recovery: Some(Recovery {
                    rate: None,
                    action: Action::Alert
                }),
                line: 29,
            }]
        );

        let unsupported: Vec<_> = file
            .unsupported
            .iter()
            .map(|u| (u.line, u.text.as_str(), u.service.as_deref(), u.reason))
            .collect();
        assert_eq!(
            unsupported,
            [
                (2, "set daemon 10", None, Reason::Global),
                (
                    22,
                    "check file config with path /var/vcap/jobs/worker/config/worker.yml",
                    Some("config"),
                    Reason::Check(Kind::File),
                ),
                (
                    23,
                    "if changed checksum then alert",
                    Some("config"),
                    Reason::Statement,
                ),
            ]
        );
    }

    #[test]
    fn program_statements_keep_the_command_options_and_monit_argv() {
        let cases: &[(&str, Program)] = &[
            (
                r#"start program "/var/vcap/jobs/x/bin/ctl start" as uid vcap and gid vcap with timeout 60 seconds"#,
                Program {
                    uid: Some("vcap".to_owned()),
                    gid: Some("vcap".to_owned()),
                    timeout_secs: Some(60),
                    ..program(
                        "/var/vcap/jobs/x/bin/ctl start",
                        &["/var/vcap/jobs/x/bin/ctl", "start"],
                    )
                },
            ),
            (
                r#"START PROGRAM = "/x" WITH TIMEOUT 5 S"#,
                Program {
                    timeout_secs: Some(5),
                    ..program("/x", &["/x"])
                },
            ),
            (r#"start "/x""#, program("/x", &["/x"])),
            (
                "start program \"/x\" with timeout 7",
                Program {
                    timeout_secs: Some(7),
                    ..program("/x", &["/x"])
                },
            ),
            (
                r#"start program "/x" as uid 1000 and gid "1000""#,
                Program {
                    uid: Some("1000".to_owned()),
                    gid: Some("1000".to_owned()),
                    ..program("/x", &["/x"])
                },
            ),
            // Without double quotes each word or string is one argument, as monit reads it.
            (
                "start program '/bin/x start'",
                program("/bin/x start", &["/bin/x start"]),
            ),
            (
                "start program /bin/x with -v",
                program("/bin/x -v", &["/bin/x", "-v"]),
            ),
        ];
        for (body, expected) in cases {
            let (service, unsupported) = in_process(body);
            assert_eq!(unsupported, [], "{body}");
            assert_eq!(service.start.as_ref(), Some(expected), "{body}");
        }
        let (service, _) = in_process(
            "stop program \"/x stop\"\nrestart program \"/x restart\"\nstart program \"/old\"\nstart program \"/new\"",
        );
        assert_eq!(service.stop, Some(program("/x stop", &["/x", "stop"])));
        assert_eq!(
            service.restart,
            Some(program("/x restart", &["/x", "restart"]))
        );
        assert_eq!(service.start, Some(program("/new", &["/new"])));
    }

    #[test]
    fn service_statements_fill_groups_dependencies_mode_and_every() {
        let (service, unsupported) = in_process(
            "group vcap group \"vcap\" GROUP other\n\
             depends on a, b,c\n depends d\n depends on \"e\", a\n\
             mode passive every 3 cycles",
        );
        assert_eq!(unsupported, []);
        assert_eq!(service.groups, strings(&["vcap", "other"]));
        assert_eq!(service.depends_on, strings(&["a", "b", "c", "d", "e"]));
        assert_eq!(service.mode, Mode::Passive);
        assert_eq!(service.every_cycles, Some(3));

        for (body, mode) in [
            ("mode active", Mode::Active),
            ("MODE MANUAL", Mode::Manual),
            ("", Mode::Active),
        ] {
            assert_eq!(in_process(body).0.mode, mode, "{body}");
        }
    }

    #[test]
    fn names_without_commas_end_the_dependency_list_as_in_monit() {
        let (service, unsupported) = in_process("depends on a b\ngroup vcap");
        assert_eq!(service.depends_on, strings(&["a"]));
        assert_eq!(service.groups, strings(&["vcap"]));
        assert_eq!(unsupported, [(2, "b".to_owned(), Reason::Statement)]);
    }

    #[test]
    fn checks_take_names_pidfiles_and_paths_in_every_spelling() {
        let cases = [
            "check process nats with pidfile /run/nats.pid",
            "check process nats\n  with pidfile /run/nats.pid",
            "check process \"nats\" with pidfile \"/run/nats.pid\"",
            "check process 'nats' pidfile '/run/nats.pid'",
            "Check Process nats With Path /run/nats.pid",
            "check nats with pidfile /run/nats.pid",
            "check process nats\n start program \"/x\"\n with pidfile /run/nats.pid",
            "check process nats \\\n with pidfile /run/nats.pid",
            "check process nats\r\n  with pidfile /run/nats.pid\r\n",
        ];
        for text in cases {
            let file = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(file.unsupported, [], "{text}");
            let service = &file.services[0];
            assert_eq!(
                (service.name.as_str(), service.kind, service.line),
                ("nats", Kind::Process, 1),
                "{text}"
            );
            assert_eq!(
                service.pidfile,
                Some(PathBuf::from("/run/nats.pid")),
                "{text}"
            );
        }
    }

    #[test]
    fn other_kinds_of_check_are_kept_and_reported() {
        let cases = [
            ("check file f with path /f", Kind::File, Some("/f")),
            ("check fifo f path /f", Kind::Fifo, Some("/f")),
            (
                "check directory f with path /d",
                Kind::Directory,
                Some("/d"),
            ),
            (
                "check filesystem f with path /dev/sda1",
                Kind::Filesystem,
                Some("/dev/sda1"),
            ),
            (
                "check device f with path /dev/sda1",
                Kind::Filesystem,
                Some("/dev/sda1"),
            ),
            (
                "check host f with address 10.0.0.1",
                Kind::Host,
                Some("10.0.0.1"),
            ),
            ("check system $HOST", Kind::System, None),
            (
                "check program f with path \"/bin/check\"",
                Kind::Program,
                Some("/bin/check"),
            ),
            (
                "check network f with interface eth0",
                Kind::Network,
                Some("eth0"),
            ),
        ];
        for (text, kind, target) in cases {
            let file = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(file.services[0].kind, kind, "{text}");
            assert_eq!(file.services[0].target.as_deref(), target, "{text}");
            assert_eq!(file.services[0].pidfile, None, "{text}");
            assert_eq!(
                file.unsupported,
                [Unsupported {
                    line: 1,
                    text: text.to_owned(),
                    service: Some(file.services[0].name.clone()),
                    reason: Reason::Check(kind),
                }],
                "{text}"
            );
        }
    }

    #[test]
    fn tests_are_typed_with_their_rate_and_action() {
        let percent = |resource, value| Condition::Resource {
            resource,
            operator: Operator::Greater,
            limit: Limit::Percent(value),
        };
        let rate = |events, cycles| Some(Rate { events, cycles });
        let port = |port| Endpoint::Port { host: None, port };
        let connection = |endpoint| Connection {
            endpoint,
            socket_type: SocketType::Tcp,
            protocol: None,
            request: None,
            timeout_secs: None,
            retries: None,
        };
        let cases: Vec<(&str, Condition, Option<Rate>, Action)> = vec![
            (
                "if totalmem > 1000 MB then restart",
                Condition::Resource {
                    resource: Resource::TotalMemory,
                    operator: Operator::Greater,
                    limit: Limit::Bytes(1000 << 20),
                },
                None,
                Action::Restart,
            ),
            (
                "if total memory greater than 50 % then alert",
                percent(Resource::TotalMemory, 50.0),
                None,
                Action::Alert,
            ),
            (
                "if memory > 200 kb then stop",
                Condition::Resource {
                    resource: Resource::Memory,
                    operator: Operator::Greater,
                    limit: Limit::Bytes(200 << 10),
                },
                None,
                Action::Stop,
            ),
            (
                "if mem is greater than 1.5gb for 2 cycles then restart",
                Condition::Resource {
                    resource: Resource::Memory,
                    operator: Operator::Greater,
                    limit: Limit::Bytes(1_610_612_736),
                },
                rate(2, 2),
                Action::Restart,
            ),
            (
                "if memory 1 GB then alert",
                Condition::Resource {
                    resource: Resource::Memory,
                    operator: Operator::Equal,
                    limit: Limit::Bytes(1 << 30),
                },
                None,
                Action::Alert,
            ),
            (
                "if cpu > 90% 3 times within 5 cycles then alert",
                percent(Resource::Cpu, 90.0),
                rate(3, 5),
                Action::Alert,
            ),
            (
                "if totalcpu > 50 percent then unmonitor",
                percent(Resource::TotalCpu, 50.0),
                None,
                Action::Unmonitor,
            ),
            (
                "if total cpu usage > 80 % for 4 cycles then start",
                percent(Resource::TotalCpu, 80.0),
                rate(4, 4),
                Action::Start,
            ),
            (
                "if cpu >= 10% then alert",
                Condition::Resource {
                    resource: Resource::Cpu,
                    operator: Operator::GreaterOrEqual,
                    limit: Limit::Percent(10.0),
                },
                None,
                Action::Alert,
            ),
            (
                "if children > 100 then alert",
                Condition::Resource {
                    resource: Resource::Children,
                    operator: Operator::Greater,
                    limit: Limit::Count(100),
                },
                None,
                Action::Alert,
            ),
            (
                "if children lt 1 then alert",
                Condition::Resource {
                    resource: Resource::Children,
                    operator: Operator::Less,
                    limit: Limit::Count(1),
                },
                None,
                Action::Alert,
            ),
            (
                "if 3 restarts within 10 cycles then alert",
                Condition::Restarts {
                    restarts: 3,
                    cycles: 10,
                },
                None,
                Action::Alert,
            ),
            (
                "IF 5 RESTARTS WITHIN 5 CYCLES THEN TIMEOUT",
                Condition::Restarts {
                    restarts: 5,
                    cycles: 5,
                },
                None,
                Action::Unmonitor,
            ),
            (
                "if failed port 4222 then restart",
                Condition::Connection(connection(port(4222))),
                None,
                Action::Restart,
            ),
            (
                "if failed host 127.0.0.1 port 8080 protocol HTTP and request \"/healthz\" \
                 with timeout 10 seconds retry 2 for 3 cycles then restart",
                Condition::Connection(Connection {
                    protocol: Some("http".to_owned()),
                    request: Some("/healthz".to_owned()),
                    timeout_secs: Some(10),
                    retries: Some(2),
                    ..connection(Endpoint::Port {
                        host: Some("127.0.0.1".to_owned()),
                        port: 8080,
                    })
                }),
                rate(3, 3),
                Action::Restart,
            ),
            (
                "if failed port 443 type tcpssl then alert",
                Condition::Connection(Connection {
                    socket_type: SocketType::TcpSsl,
                    ..connection(port(443))
                }),
                None,
                Action::Alert,
            ),
            (
                "if failed unixsocket /var/vcap/sys/run/x.sock 2 times within 3 cycles then restart",
                Condition::Connection(connection(Endpoint::UnixSocket(PathBuf::from(
                    "/var/vcap/sys/run/x.sock",
                )))),
                rate(2, 3),
                Action::Restart,
            ),
            (
                "if does not exist then exec \"/var/vcap/jobs/x/bin/page 'on call'\" as uid vcap",
                Condition::DoesNotExist,
                None,
                Action::Exec(Program {
                    uid: Some("vcap".to_owned()),
                    ..program(
                        "/var/vcap/jobs/x/bin/page 'on call'",
                        &["/var/vcap/jobs/x/bin/page", "on call"],
                    )
                }),
            ),
            (
                "if\n  totalmem > 1 GB\n  for 3 cycles\nthen\n  restart",
                Condition::Resource {
                    resource: Resource::TotalMemory,
                    operator: Operator::Greater,
                    limit: Limit::Bytes(1 << 30),
                },
                rate(3, 3),
                Action::Restart,
            ),
        ];
        for (body, condition, rate, action) in cases {
            let test = only_test(body);
            assert_eq!(test.condition, condition, "{body}");
            assert_eq!(test.rate, rate, "{body}");
            assert_eq!(test.action, action, "{body}");
            assert_eq!((test.recovery, test.line), (None, 2), "{body}");
        }
    }

    #[test]
    fn tests_keep_their_recovery_action() {
        let test = only_test(
            "if cpu > 90% for 3 cycles then alert\n  else if passed for 2 cycles then exec \"/bin/x\"",
        );
        assert_eq!(
            test.recovery,
            Some(Recovery {
                rate: Some(Rate {
                    events: 2,
                    cycles: 2
                }),
                action: Action::Exec(program("/bin/x", &["/bin/x"])),
            })
        );
        let test = only_test("if failed port 80 then restart else if recovered then alert");
        assert_eq!(
            test.recovery,
            Some(Recovery {
                rate: None,
                action: Action::Alert
            })
        );
    }

    #[test]
    fn statements_the_model_lacks_are_reported_with_their_line_and_text() {
        let cases = [
            "if changed pid then alert",
            "if uptime > 3 days then alert",
            "if cpu > 90 then alert",
            "if memory > 100 then restart",
            "if children > 5 % then alert",
            "if failed port 80 then frobnicate",
            "if failed port 80 protocol http hostheader \"x\" then restart",
            "if failed port 99999 then restart",
            "if failed host localhost then restart",
            "if cpu > 50% 6 times within 5 cycles then alert",
            "if 0 restarts within 5 cycles then timeout",
            "if failed port 80 then restart else if foo then alert",
            "mode sometimes",
            "every \"* 8-19 * * 1-5\"",
            "matching \"nats-server\"",
            "alert ops@example.com with mail-format { subject: it's down }",
            "alert ops@example.com with reminder on 5 cycles",
            "alert ops",
            "frobnicate the widget",
            "if failed port 80",
        ];
        for body in cases {
            let (service, unsupported) = in_process(&format!("{body}\ngroup vcap"));
            assert_eq!(
                unsupported,
                [(2, body.to_owned(), Reason::Statement)],
                "{body}"
            );
            assert_eq!(service.tests, [], "{body}");
            assert_eq!(service.groups, strings(&["vcap"]), "{body}");
        }
        // An alert with a mail format still names its recipient.
        let (service, _) = in_process("alert ops@example.com with mail-format { subject: down }");
        assert_eq!(service.alerts[0].recipient, "ops@example.com");
    }

    #[test]
    fn global_statements_are_reported_and_set_ends_the_service() {
        let file = parse(
            "set httpd port 2822 and use address 127.0.0.1\n  allow cleartext /var/vcap/monit/monit.user\n\
             check process a with pidfile /a.pid\n  include /var/vcap/monit/extra/*.monitrc\n  group vcap\n\
             set alert agent@local\n  group vcap\nset daemon 10 with start delay 5\n\
             check process b with pidfile /b.pid",
        )
        .unwrap();
        let names: Vec<_> = file
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.groups.clone()))
            .collect();
        assert_eq!(names, [("a", strings(&["vcap"])), ("b", Vec::new())]);
        let unsupported: Vec<_> = file
            .unsupported
            .iter()
            .map(|u| (u.line, u.text.as_str(), u.service.as_deref(), u.reason))
            .collect();
        assert_eq!(
            unsupported,
            [
                (
                    1,
                    "set httpd port 2822 and use address 127.0.0.1 allow cleartext /var/vcap/monit/monit.user",
                    None,
                    Reason::Global
                ),
                (
                    4,
                    "include /var/vcap/monit/extra/*.monitrc",
                    Some("a"),
                    Reason::Global
                ),
                (6, "set alert agent@local", None, Reason::Global),
                (7, "group vcap", None, Reason::OutsideCheck),
                (8, "set daemon 10 with start delay 5", None, Reason::Global),
            ]
        );
    }

    #[test]
    fn statements_before_the_first_check_belong_to_no_service() {
        let file = parse("# header\ngroup vcap\nstart program \"/x\"\n").unwrap();
        assert_eq!(file.services, []);
        assert_eq!(
            file.unsupported
                .iter()
                .map(|u| (u.line, u.text.as_str(), u.reason))
                .collect::<Vec<_>>(),
            [
                (2, "group vcap", Reason::OutsideCheck),
                (3, "start program \"/x\"", Reason::OutsideCheck),
            ]
        );
    }

    #[test]
    fn empty_and_comment_only_files_have_no_services() {
        for text in ["", "\n\n", "# nothing here\n   # at all", "with and the"] {
            assert_eq!(parse(text).unwrap(), MonitFile::default(), "{text:?}");
        }
    }

    #[test]
    fn a_process_found_by_matching_has_no_pidfile_and_is_reported() {
        let file = parse("check process nats matching \"nats-server\"\n group vcap").unwrap();
        assert_eq!(file.services[0].pidfile, None);
        assert_eq!(file.services[0].groups, strings(&["vcap"]));
        assert_eq!(
            file.unsupported,
            [Unsupported {
                line: 1,
                text: "matching \"nats-server\"".to_owned(),
                service: Some("nats".to_owned()),
                reason: Reason::Statement,
            }]
        );
    }

    #[test]
    fn input_that_cannot_be_a_monit_file_is_an_error_naming_the_line() {
        let missing = |line, keyword, what| Error::MissingArgument {
            line,
            keyword,
            what,
        };
        let cases = [
            (
                "check process",
                Error::MissingName {
                    line: 1,
                    kind: Kind::Process,
                },
            ),
            (
                "\ncheck",
                Error::MissingName {
                    line: 2,
                    kind: Kind::Process,
                },
            ),
            (
                "check file\ncheck process a",
                Error::MissingName {
                    line: 1,
                    kind: Kind::File,
                },
            ),
            ("check process \"nats", Error::UnterminatedQuote { line: 1 }),
            (
                "check process a with pidfile /a.pid\nstart program \"/x start\nstop program \"/x stop\"",
                Error::UnterminatedQuote { line: 3 },
            ),
            (
                "check process a with pidfile /a.pid\nalert x@y { timeout",
                Error::UnterminatedBrace { line: 2 },
            ),
            (
                "check process a\n  with pidfile",
                missing(2, "pidfile", "a path"),
            ),
            (
                "check process a with pidfile\n  group vcap",
                missing(1, "pidfile", "a path"),
            ),
            ("check process a path", missing(1, "path", "a path")),
            ("check host h address", missing(1, "address", "an address")),
            (
                "check process a matching",
                missing(1, "matching", "a pattern"),
            ),
            (
                "check process a with pidfile /a.pid\nstart program \"\"",
                missing(2, "start program", "a command"),
            ),
            (
                "check process a with pidfile /a.pid\nstop program",
                missing(2, "stop program", "a command"),
            ),
            (
                "check process a with pidfile /a.pid\nrestart program group vcap",
                missing(2, "restart program", "a command"),
            ),
            (
                "check process a with pidfile /a.pid\nstart program \"/x\" as uid",
                missing(2, "uid", "a user"),
            ),
            (
                "check process a with pidfile /a.pid\nstart program \"/x\" and gid\ngroup vcap",
                missing(2, "gid", "a group"),
            ),
            (
                "check process a with pidfile /a.pid\nstop program \"/x\" with timeout seconds",
                missing(2, "timeout", "a number of seconds"),
            ),
            (
                "check process a with pidfile /a.pid\ngroup",
                missing(2, "group", "a name"),
            ),
            (
                "check process a with pidfile /a.pid\ndepends on\nmode manual",
                missing(2, "depends on", "a service name"),
            ),
            (
                "check process a with pidfile /a.pid\nmode",
                missing(2, "mode", "active, passive or manual"),
            ),
            (
                "check process a with pidfile /a.pid\nevery",
                missing(2, "every", "a number of cycles"),
            ),
            (
                "check process a with pidfile /a.pid\nalert",
                missing(2, "alert", "an address"),
            ),
            (
                "check process a with pidfile /a.pid\nnoalert",
                missing(2, "noalert", "an address"),
            ),
            (
                "\ncheck process a\n start program \"/x\"\ncheck process b with pidfile /b.pid",
                Error::MissingPidfile {
                    line: 2,
                    service: "a".to_owned(),
                },
            ),
            (
                "check process a with pidfile /a.pid\n\ncheck file a with path /a",
                Error::DuplicateService {
                    line: 3,
                    service: "a".to_owned(),
                    first_line: 1,
                },
            ),
        ];
        for (text, error) in cases {
            assert_eq!(parse(text), Err(error), "{text}");
        }
    }

    #[test]
    fn error_messages_are_lower_case_and_name_the_line() {
        let messages = [
            (
                parse("check process").unwrap_err(),
                "line 1: check process without a name",
            ),
            (parse("\n'").unwrap_err(), "line 2: unterminated quote"),
            (
                parse("check process a\n  with pidfile").unwrap_err(),
                "line 2: pidfile without a path",
            ),
            (
                parse("check process a start program \"/x\"").unwrap_err(),
                "line 1: check process a has no pidfile",
            ),
            (
                parse("check process a with pidfile /a\ncheck process a with pidfile /b")
                    .unwrap_err(),
                "line 2: service a is already checked on line 1",
            ),
        ];
        for (error, message) in messages {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn every_prefix_of_every_fixture_parses_or_fails_without_panicking() {
        for name in [
            "nats.monit",
            "director.monit",
            "cloud_controller_ng.monit",
            "odd.monit",
        ] {
            let text = fixture(name);
            for end in 0..=text.len() {
                // The fixtures are ASCII, so every byte offset is a character boundary.
                let _ = parse(&text[..end]);
            }
        }
    }
}
