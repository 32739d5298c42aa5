//! The lexer for monit files, after monit's `src/l.l` (built with `flex -i`, so keywords are
//! case-insensitive).
//!
//! It follows monit where BOSH job files can tell the difference:
//!
//! - Blanks, newlines, `,`, `;`, `(` and `)` separate words, and a backslash before a newline
//!   continues the line. A comma is remembered on the word after it, because `depends on a, b`
//!   lists services only while commas separate them.
//! - `#` starts a comment to the end of the line, but only where a word could start: inside a
//!   word (`vcap#1`) or inside quotes it is an ordinary character.
//! - `"..."` and `'...'` are strings and may span lines; `{ ... }` is a block (alert events and
//!   `mail-format`), kept as text.
//! - After `start`, `stop`, `restart` and `exec`, optionally followed by `program` and `=`, a
//!   double-quoted string is a command line. Monit splits it into argv itself, with no shell
//!   (its `ARGUMENT_COND` state): words end at blanks, and a word that starts with `'` runs to the
//!   next `'` (one argument, quotes removed) when that is the longer match, as flex picks it.
//!   Monit wants the opening quote on the same line as the keyword; we also accept it on the next.
//!
//! Backslash escapes inside strings are kept as written; monit would expand `\n` and the like, and
//! BOSH files do not use them.

use crate::monit::parse::Error;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// An unquoted word; `text` is the word.
    Word,
    /// A quoted string outside a command line; `text` is what is inside the quotes.
    Quoted,
    /// The double-quoted command line after `start`, `stop`, `restart` or `exec`; `text` is what
    /// is inside the quotes.
    Command {
        /// The words monit executes.
        argv: Vec<String>,
    },
    /// A `{ ... }` block; `text` is what is inside the braces.
    Block,
}

/// One token and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// What it is.
    pub kind: TokenKind,
    /// Its text (see [`TokenKind`]).
    pub text: String,
    /// For a word, its text in lower case, to match keywords; empty otherwise.
    pub lower: String,
    /// The token as written, quotes included.
    pub source: &'a str,
    /// The 1-based line where it starts.
    pub line: usize,
    /// Whether a comma separates it from the token before.
    pub is_after_comma: bool,
}

/// Splits `text` into tokens.
pub(crate) fn lex(text: &str) -> Result<Vec<Token<'_>>, Error> {
    let mut lexer = Lexer {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        line: 1,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

impl Token<'_> {
    /// Whether this is the unquoted word `keyword` (given in lower case), in any case.
    pub(crate) fn is(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.lower == keyword
    }
}

/// Every delimiter is ASCII, so slicing `text` at a delimiter's byte offset stays on a character
/// boundary.
struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    tokens: Vec<Token<'a>>,
}

impl<'a> Lexer<'a> {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            let is_after_comma = self.skip_separators();
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Ok(());
            };
            let start = self.pos;
            let line = self.line;
            let (kind, text) = match byte {
                b'#' => {
                    self.skip_comment();
                    continue;
                }
                b'"' | b'\'' => {
                    let inner = self.delimited(byte, Error::UnterminatedQuote { line })?;
                    (TokenKind::Quoted, inner.to_owned())
                }
                b'{' => {
                    let inner = self.delimited(b'}', Error::UnterminatedBrace { line })?;
                    (TokenKind::Block, inner.to_owned())
                }
                _ => {
                    let end = self.word_end(start);
                    self.pos = end;
                    (TokenKind::Word, self.text[start..end].to_owned())
                }
            };
            let lower = if kind == TokenKind::Word {
                text.to_ascii_lowercase()
            } else {
                String::new()
            };
            let opens_command = matches!(
                lower.as_str(),
                "start" | "stop" | "restart" | "exec" | "execute"
            );
            self.tokens.push(Token {
                kind,
                text,
                lower,
                source: &self.text[start..self.pos],
                line,
                is_after_comma,
            });
            if opens_command {
                self.command()?;
            }
        }
    }

    /// Skips blanks, newlines, `,;()` and backslash-newline; says whether a comma was among them.
    fn skip_separators(&mut self) -> bool {
        let mut is_after_comma = false;
        while let Some(&byte) = self.bytes.get(self.pos) {
            match byte {
                b' ' | b'\t' | b'\r' | b';' | b'(' | b')' => self.pos += 1,
                b',' => {
                    is_after_comma = true;
                    self.pos += 1;
                }
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b'\\' if self.bytes[self.pos + 1..].starts_with(b"\n") => {
                    self.line += 1;
                    self.pos += 2;
                }
                b'\\' if self.bytes[self.pos + 1..].starts_with(b"\r\n") => {
                    self.line += 1;
                    self.pos += 3;
                }
                _ => break,
            }
        }
        is_after_comma
    }

    fn skip_comment(&mut self) {
        while let Some(&byte) = self.bytes.get(self.pos) {
            if byte == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    /// Reads from the opening delimiter at `pos` to the `close` byte and returns what is between.
    fn delimited(&mut self, close: u8, unterminated: Error) -> Result<&'a str, Error> {
        let open = self.pos;
        let Some(offset) = self.bytes[open + 1..].iter().position(|&b| b == close) else {
            return Err(unterminated);
        };
        let end = open + 1 + offset;
        let inner = &self.text[open + 1..end];
        self.line += count_newlines(inner);
        self.pos = end + 1;
        Ok(inner)
    }

    /// The end of the unquoted word starting at `start`. A stray `}` is a word of its own.
    fn word_end(&self, start: usize) -> usize {
        let length = self.bytes[start..]
            .iter()
            .position(|&b| {
                matches!(
                    b,
                    b' ' | b'\t'
                        | b'\r'
                        | b'\n'
                        | b','
                        | b';'
                        | b'('
                        | b')'
                        | b'"'
                        | b'\''
                        | b'{'
                        | b'}'
                )
            })
            .unwrap_or(self.bytes.len() - start);
        start + length.max(1)
    }

    /// After `start`, `stop`, `restart` or `exec`: if `[program] [=] "` follows, reads the command
    /// line as one [`TokenKind::Command`] token.
    fn command(&mut self) -> Result<(), Error> {
        let blank = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        let skip_blanks = |mut at: usize| {
            while self.bytes.get(at).is_some_and(|&b| blank(b)) {
                at += 1;
            }
            at
        };
        let start = skip_blanks(self.pos);
        let mut at = start;
        let rest = &self.bytes[at..];
        if rest.len() >= 7
            && rest[..7].eq_ignore_ascii_case(b"program")
            && rest
                .get(7)
                .is_none_or(|&b| blank(b) || b == b'=' || b == b'"')
        {
            at = skip_blanks(at + 7);
        }
        if self.bytes.get(at) == Some(&b'=') {
            at = skip_blanks(at + 1);
        }
        if self.bytes.get(at) != Some(&b'"') {
            return Ok(());
        }
        self.line += count_newlines(&self.text[self.pos..at]);
        let line = self.line;
        let command_start = at + 1;
        self.pos = command_start;
        let mut argv = Vec::new();
        loop {
            while let Some(&byte) = self.bytes.get(self.pos).filter(|&&b| blank(b)) {
                if byte == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
            }
            match self.bytes.get(self.pos) {
                None => return Err(Error::UnterminatedQuote { line }),
                Some(b'"') => break,
                Some(&byte) => {
                    let word_end = self.bytes[self.pos..]
                        .iter()
                        .position(|&b| blank(b) || b == b'"')
                        .map_or(self.bytes.len(), |offset| self.pos + offset);
                    let quote_end = (byte == b'\'')
                        .then(|| {
                            self.bytes[self.pos + 1..]
                                .iter()
                                .position(|&b| b == b'\'')
                                .map(|offset| self.pos + 1 + offset + 1)
                        })
                        .flatten();
                    match quote_end {
                        // Flex takes the longest match, and the quoted rule on a tie.
                        Some(end) if end >= word_end => {
                            let inner = &self.text[self.pos + 1..end - 1];
                            self.line += count_newlines(inner);
                            argv.push(inner.to_owned());
                            self.pos = end;
                        }
                        _ if byte == b'\'' && word_end - self.pos == 1 => {
                            return Err(Error::UnterminatedQuote { line: self.line });
                        }
                        _ => {
                            argv.push(self.text[self.pos..word_end].to_owned());
                            self.pos = word_end;
                        }
                    }
                }
            }
        }
        let command = self.text[command_start..self.pos].to_owned();
        self.pos += 1;
        self.tokens.push(Token {
            kind: TokenKind::Command { argv },
            text: command,
            lower: String::new(),
            source: &self.text[start..self.pos],
            line,
            is_after_comma: false,
        });
        Ok(())
    }
}

fn count_newlines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(text: &str) -> (String, Vec<String>) {
        let tokens = lex(text).unwrap();
        match &tokens[1].kind {
            TokenKind::Command { argv } => (tokens[1].text.clone(), argv.clone()),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    #[test]
    fn command_lines_split_on_blanks_with_single_quotes_grouping_as_monit_does() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                r#"start program "/var/vcap/jobs/x/bin/ctl start""#,
                "/var/vcap/jobs/x/bin/ctl start",
                &["/var/vcap/jobs/x/bin/ctl", "start"],
            ),
            (r#"stop "/bin/x""#, "/bin/x", &["/bin/x"]),
            (
                r#"START PROGRAM = "/bin/x  a	b""#,
                "/bin/x  a\tb",
                &["/bin/x", "a", "b"],
            ),
            (r#"restart program="/bin/x""#, "/bin/x", &["/bin/x"]),
            (
                r#"start program "/bin/sh -c 'exec /bin/x > /tmp/log 2>&1'""#,
                "/bin/sh -c 'exec /bin/x > /tmp/log 2>&1'",
                &["/bin/sh", "-c", "exec /bin/x > /tmp/log 2>&1"],
            ),
            (
                r#"exec "/bin/sh -c 'echo "hi"; exit 1'""#,
                r#"/bin/sh -c 'echo "hi"; exit 1'"#,
                &["/bin/sh", "-c", r#"echo "hi"; exit 1"#],
            ),
            // A quote inside a word is an ordinary character; `#` is never a comment here.
            (
                r#"start "/bin/echo it's #1""#,
                "/bin/echo it's #1",
                &["/bin/echo", "it's", "#1"],
            ),
            // A word that starts with a quote but outruns it is kept whole.
            (r#"start "/bin/x 'a'b""#, "/bin/x 'a'b", &["/bin/x", "'a'b"]),
            (
                r#"start "/bin/x '' z""#,
                "/bin/x '' z",
                &["/bin/x", "", "z"],
            ),
            (r#"start program """#, "", &[]),
            (
                "start program\n  \"/bin/x\n  start\"",
                "/bin/x\n  start",
                &["/bin/x", "start"],
            ),
        ];
        for (text, raw, argv) in cases {
            let (command_text, command_argv) = command(text);
            assert_eq!(command_text, *raw, "{text}");
            assert_eq!(command_argv, *argv, "{text}");
        }
    }

    #[test]
    fn start_without_a_double_quote_is_a_plain_word() {
        let tokens = lex("set daemon 10 with start delay 30\nstart '/bin/x'").unwrap();
        let kinds: Vec<_> = tokens
            .iter()
            .map(|t| (t.kind.clone(), t.text.as_str()))
            .collect();
        assert_eq!(kinds[4], (TokenKind::Word, "start"));
        assert_eq!(kinds[5], (TokenKind::Word, "delay"));
        assert_eq!(kinds[8], (TokenKind::Quoted, "/bin/x"));
    }

    #[test]
    fn comments_start_only_where_a_word_could() {
        let tokens = lex("group vcap#1 # trailing\n# whole line\n\"a # b\" x").unwrap();
        let texts: Vec<_> = tokens.iter().map(|t| (t.text.as_str(), t.line)).collect();
        assert_eq!(texts, [("group", 1), ("vcap#1", 1), ("a # b", 3), ("x", 3)]);
    }

    #[test]
    fn separators_mark_commas_and_lines_count_through_strings_and_continuations() {
        let tokens = lex("depends on a,b ;c\n'x\ny' \\\n(z) {e,\n f}\nlast").unwrap();
        let seen: Vec<_> = tokens
            .iter()
            .map(|t| (t.text.as_str(), t.line, t.is_after_comma))
            .collect();
        assert_eq!(
            seen,
            [
                ("depends", 1, false),
                ("on", 1, false),
                ("a", 1, false),
                ("b", 1, true),
                ("c", 1, false),
                ("x\ny", 2, false),
                ("z", 4, false),
                ("e,\n f", 4, false),
                ("last", 6, false),
            ]
        );
    }

    #[test]
    fn unterminated_quotes_and_braces_name_the_line_where_they_open() {
        assert_eq!(
            lex("check process a\n  with pidfile \"/x\n").unwrap_err(),
            Error::UnterminatedQuote { line: 2 }
        );
        assert_eq!(
            lex("\n\nstart program \"/bin/x start\n").unwrap_err(),
            Error::UnterminatedQuote { line: 3 }
        );
        assert_eq!(
            lex("start program \"/bin/x ' \"").unwrap_err(),
            Error::UnterminatedQuote { line: 1 }
        );
        assert_eq!(
            lex("alert a@b {\n timeout").unwrap_err(),
            Error::UnterminatedBrace { line: 1 }
        );
    }
}
