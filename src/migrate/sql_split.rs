//! Splitting PostgreSQL scripts into statements, and spotting the statements
//! that cannot run inside a transaction block.
//!
//! Most migrations are sent to PostgreSQL whole, in one transaction. Scripts
//! containing e.g. `CREATE INDEX CONCURRENTLY` must instead run statement by
//! statement outside a transaction, so the engine has to split them and decide
//! which statements need that, the way Flyway's PostgreSQL parser does.
//!
//! Both jobs sit on one small lexer that knows just enough of PostgreSQL's
//! lexical rules to find statement boundaries and leading keywords: quoted
//! strings and identifiers, dollar quotes, nested comments. Strings follow
//! `standard_conforming_strings = on` (the default since PostgreSQL 9.1): a
//! backslash only escapes inside `E'...'` strings.
//!
//! Everything here is pure and total: malformed input (an unterminated quote
//! or comment) simply runs to the end of the script.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement text, from its first significant character (leading whitespace and comments skipped) up to but not including its terminating `;` (trailing whitespace trimmed).
    pub sql: &'a str,
    /// Byte offset of `sql` in the script.
    pub offset: usize,
    /// 1-based line number in the script where `sql` starts.
    pub line: usize,
    /// The inline data of a `COPY ... FROM STDIN` statement (pg_dump style: the lines after the
    /// statement up to a line `\.`), which is data, not SQL.
    pub copy_data: Option<CopyData<'a>>,
}

/// Inline rows of `COPY ... FROM STDIN`, without the terminating `\.` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyData<'a> {
    pub data: &'a str,
    /// Byte offset of `data` in the script.
    pub offset: usize,
    /// 1-based line of the first data row in the script.
    pub line: usize,
}

/// Splits a PostgreSQL script into statements. Never panics on any input (unterminated quotes/comments just run to the end of the script). Statements that are empty or comment-only are not returned.
///
/// A `;` ends a statement unless it is inside a string, quoted identifier,
/// dollar quote or comment, or inside a SQL-standard function body
/// (`BEGIN ATOMIC ... END`).
pub fn split_statements(script: &str) -> Vec<Statement<'_>> {
    let mut statements = Vec::new();
    let mut lines = LineCounter::new(script);
    // Offset of the current statement's first significant token, if any yet.
    let mut start: Option<usize> = None;
    let mut atomic = AtomicTracker::default();

    let mut push = |start: usize, end: usize, copy_data: Option<(usize, usize)>| {
        let sql = script[start..end].trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
        let line = lines.line_at(start);
        let copy_data = copy_data.map(|(from, to)| CopyData {
            data: &script[from..to],
            offset: from,
            line: lines.line_at(from),
        });
        statements.push(Statement {
            sql,
            offset: start,
            line,
            copy_data,
        });
    };

    let mut lexer = Lexer::new(script);
    while let Some(token) = lexer.next() {
        if token.kind == Kind::Semicolon && !atomic.inside() {
            if let Some(start) = start.take() {
                if is_copy_from_stdin(&script[start..token.start]) {
                    let (data, resume) = copy_block(script, token.end);
                    push(start, token.start, Some(data));
                    lexer.pos = resume;
                } else {
                    push(start, token.start, None);
                }
            }
            atomic = AtomicTracker::default();
            continue;
        }
        start.get_or_insert(token.start);
        atomic.observe(token, &script[token.start..token.end]);
    }
    if let Some(start) = start {
        push(start, script.len(), None);
    }
    statements
}

/// Whether the script ends or starts transactions itself (`BEGIN`, `COMMIT`, `ROLLBACK`, ...).
/// Such a script can commit part of itself, after which an error no longer leaves the session
/// in an aborted transaction, so it must not share a pipeline with the scripts after it.
pub fn controls_transactions(script: &str) -> bool {
    split_statements(script).iter().any(|s| {
        let mut words = Words::new(s.sql);
        ["BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"]
            .iter()
            .any(|kw| words.eat(kw))
            || (words.eat("PREPARE") && words.eat("TRANSACTION"))
    })
}

/// Whether any statement of the script carries inline COPY data.
pub fn has_copy_data(script: &str) -> bool {
    split_statements(script)
        .iter()
        .any(|s| s.copy_data.is_some())
}

/// `COPY <table> [(columns)] FROM STDIN ...`: FROM STDIN outside parentheses (a `COPY (query)`
/// goes TO somewhere and never reads stdin).
fn is_copy_from_stdin(statement: &str) -> bool {
    let mut words = Words::new(statement);
    if !words.eat("COPY") {
        return false;
    }
    let mut depth = 0usize;
    while let Some((kind, text)) = words.next() {
        match (kind, text) {
            (Kind::Punct, "(") => depth += 1,
            (Kind::Punct, ")") => depth = depth.saturating_sub(1),
            (Kind::Word, w) if depth == 0 && w.eq_ignore_ascii_case("FROM") => {
                return words.eat("STDIN");
            }
            _ => {}
        }
    }
    false
}

/// The data block after a COPY statement ending at `after_semicolon`: it starts on the next
/// line, as in psql, and ends before a line holding only `\.` (or at the end of the script).
/// Returns the data's byte range and where the SQL goes on.
fn copy_block(script: &str, after_semicolon: usize) -> ((usize, usize), usize) {
    let from = match script[after_semicolon..].find('\n') {
        Some(n) => after_semicolon + n + 1,
        None => return ((script.len(), script.len()), script.len()),
    };
    let mut line_start = from;
    while line_start < script.len() {
        let line_end = script[line_start..]
            .find('\n')
            .map_or(script.len(), |n| line_start + n);
        if script[line_start..line_end].trim_end_matches('\r') == "\\." {
            return ((from, line_start), line_end);
        }
        line_start = line_end + 1;
    }
    ((from, script.len()), script.len())
}

/// Why this one statement cannot run inside a transaction block, as Flyway's PostgreSQL parser decides, e.g. Some("CREATE INDEX CONCURRENTLY"); None when it can.
///
/// Only the statement's leading keywords are looked at (case-insensitively,
/// skipping whitespace and comments), so a keyword inside a string or an
/// identifier never matches. Beyond Flyway's list, any `REINDEX` using the
/// `CONCURRENTLY` option is reported too. `REFRESH MATERIALIZED VIEW
/// CONCURRENTLY`, `ALTER SUBSCRIPTION` and (since PostgreSQL 12) `ALTER TYPE
/// ... ADD VALUE` can all run in a transaction and are not reported.
pub fn non_transactional_reason(statement: &str) -> Option<&'static str> {
    let mut words = Words::new(statement);
    if words.eat("CREATE") {
        // CREATE [UNIQUE] INDEX [CONCURRENTLY] ...: the option comes right after INDEX.
        let unique = words.eat("UNIQUE");
        if words.eat("INDEX") {
            return words
                .eat("CONCURRENTLY")
                .then_some("CREATE INDEX CONCURRENTLY");
        }
        if unique {
            return None;
        }
        return words.eat_one_of(&[
            ("DATABASE", "CREATE DATABASE"),
            ("TABLESPACE", "CREATE TABLESPACE"),
            ("SUBSCRIPTION", "CREATE SUBSCRIPTION"),
        ]);
    }
    if words.eat("DROP") {
        // DROP INDEX [CONCURRENTLY] [IF EXISTS] name
        if words.eat("INDEX") {
            return words
                .eat("CONCURRENTLY")
                .then_some("DROP INDEX CONCURRENTLY");
        }
        return words.eat_one_of(&[
            ("DATABASE", "DROP DATABASE"),
            ("TABLESPACE", "DROP TABLESPACE"),
            ("SUBSCRIPTION", "DROP SUBSCRIPTION"),
        ]);
    }
    if words.eat("REINDEX") {
        return reindex_reason(&mut words);
    }
    if words.eat("VACUUM") {
        return Some("VACUUM");
    }
    if words.eat("ALTER") {
        if words.eat("TABLE") {
            // ALTER TABLE ... DETACH PARTITION name CONCURRENTLY
            let mut detach = false;
            while let Some((kind, w)) = words.next() {
                if kind == Kind::Word && w.eq_ignore_ascii_case("DETACH") {
                    detach = words.eat("PARTITION");
                } else if detach && kind == Kind::Word && w.eq_ignore_ascii_case("CONCURRENTLY") {
                    return Some("ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY");
                }
            }
            return None;
        }
        return words.eat("SYSTEM").then_some("ALTER SYSTEM");
    }
    if words.eat("DISCARD") {
        return words.eat("ALL").then_some("DISCARD ALL");
    }
    None
}

/// Whether the script mixes statements that cannot run in a transaction with ones that can:
/// Some((line of the first non-transactional statement, its reason)).
pub fn mixed_transactionality(script: &str) -> Option<(usize, &'static str)> {
    let statements = split_statements(script);
    let first = statements
        .iter()
        .find_map(|s| non_transactional_reason(s.sql).map(|r| (s.line, r)))?;
    statements
        .iter()
        .any(|s| non_transactional_reason(s.sql).is_none())
        .then_some(first)
}

/// The first statement of the script that cannot run in a transaction: Some((statement line, reason)).
pub fn first_non_transactional(script: &str) -> Option<(usize, &'static str)> {
    split_statements(script)
        .into_iter()
        .find_map(|s| non_transactional_reason(s.sql).map(|reason| (s.line, reason)))
}

/// 1-based line number of a 0-based byte offset in `text` (offset past the end: last line).
///
/// Lines are counted by `\n`, so CRLF text works too. An offset equal to the
/// text's length is the position after its last character: when the text ends
/// with a newline, that is the (empty) line after it.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// `REINDEX [ ( option [, ...] ) ] { INDEX | TABLE | SCHEMA | DATABASE | SYSTEM } [ CONCURRENTLY ] name`
/// with `REINDEX` already consumed.
fn reindex_reason(words: &mut Words<'_>) -> Option<&'static str> {
    let mut concurrently = false;
    if words.eat_punct(b'(') {
        concurrently = reindex_options_request_concurrently(words);
    }
    // REINDEX of a whole schema, database or system catalog commits per table,
    // so PostgreSQL refuses it in a transaction block (Flyway agrees).
    let whole = words.eat_one_of(&[
        ("SCHEMA", "REINDEX SCHEMA"),
        ("DATABASE", "REINDEX DATABASE"),
        ("SYSTEM", "REINDEX SYSTEM"),
    ]);
    if whole.is_none() && !words.eat("INDEX") && !words.eat("TABLE") {
        return None;
    }
    if words.eat("CONCURRENTLY") || concurrently {
        return Some("REINDEX CONCURRENTLY");
    }
    whole
}

/// Reads a parenthesised option list up to and including its `)`; true when
/// it turns `CONCURRENTLY` on (`CONCURRENTLY`, `CONCURRENTLY true`, ...).
fn reindex_options_request_concurrently(words: &mut Words<'_>) -> bool {
    let mut concurrently = false;
    let mut at_option_name = true;
    while let Some((kind, text)) = words.next() {
        match (kind, text) {
            (Kind::Punct, ")") => break,
            (Kind::Punct, ",") => at_option_name = true,
            (Kind::Word, name) if at_option_name && name.eq_ignore_ascii_case("CONCURRENTLY") => {
                // The value is optional; PostgreSQL's defGetBoolean reads
                // 0, false and off (quoted or not, any case) as false.
                let off = words.peek().is_some_and(|(_, value)| {
                    let value = value.trim_matches('\'');
                    ["0", "false", "off"]
                        .iter()
                        .any(|f| value.eq_ignore_ascii_case(f))
                });
                concurrently = !off;
                at_option_name = false;
            }
            _ => at_option_name = false,
        }
    }
    concurrently
}

/// PostgreSQL's whitespace characters (space, \t, \n, \r, \f, \v).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// First character of an unquoted identifier or of a dollar-quote tag. Bytes
/// of multi-byte UTF-8 characters count as letters, as in PostgreSQL.
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// Later character of a dollar-quote tag.
fn is_tag_char(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

/// Later character of an unquoted identifier: unlike a tag it may contain
/// `$`, which is why `a$b$` is one identifier and not the start of a quote.
fn is_ident_char(b: u8) -> bool {
    is_tag_char(b) || b == b'$'
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unquoted identifier or keyword.
    Word,
    /// Numeric literal (loosely: a digit followed by letters, digits, `_`, `.`).
    Number,
    /// `"..."` or `U&"..."`.
    QuotedIdent,
    /// Any string constant: `'...'`, `E'...'`, `U&'...'`, `B'...'`, `$tag$...$tag$`.
    String,
    /// Positional parameter such as `$1`.
    Param,
    Semicolon,
    /// Any other single (ASCII) character: operators, parentheses, commas...
    Punct,
}

/// A significant token: byte range `start..end` of the source.
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// Yields the significant tokens of a script; whitespace and comments are
/// skipped. Token boundaries always fall on ASCII characters or the ends of
/// the text, so they are valid `str` slice boundaries.
struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            pos: 0,
        }
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        self.bytes[self.pos..].starts_with(s)
    }

    fn skip_whitespace_and_comments(&mut self) {
        loop {
            match self.at(self.pos) {
                Some(b) if is_space(b) => self.pos += 1,
                Some(b'-') if self.starts_with(b"--") => {
                    self.pos = match self.bytes[self.pos..].iter().position(|&b| b == b'\n') {
                        Some(n) => self.pos + n,
                        None => self.bytes.len(),
                    };
                }
                Some(b'/') if self.starts_with(b"/*") => self.skip_block_comment(),
                _ => return,
            }
        }
    }

    /// Block comments nest in PostgreSQL: `/* a /* b */ c */` is one comment.
    fn skip_block_comment(&mut self) {
        self.pos += 2;
        let mut depth = 1;
        while self.pos < self.bytes.len() {
            if self.starts_with(b"/*") {
                depth += 1;
                self.pos += 2;
            } else if self.starts_with(b"*/") {
                self.pos += 2;
                depth -= 1;
                if depth == 0 {
                    return;
                }
            } else {
                self.pos += 1;
            }
        }
    }

    /// Skips to just past the closing `quote` (opening one already consumed),
    /// where a doubled quote stands for itself. With `backslash_escapes`
    /// (E-strings) a backslash also escapes the next character.
    fn skip_quoted(&mut self, quote: u8, backslash_escapes: bool) {
        while let Some(b) = self.at(self.pos) {
            if backslash_escapes && b == b'\\' {
                self.pos = (self.pos + 2).min(self.bytes.len());
            } else if b == quote {
                self.pos += 1;
                if self.at(self.pos) != Some(quote) {
                    return;
                }
                self.pos += 1;
            } else {
                self.pos += 1;
            }
        }
    }

    /// At a `$`: positional parameter, dollar-quoted string, or a lone `$`.
    fn dollar(&mut self) -> Kind {
        let open = self.pos;
        let mut i = open + 1;
        if self.at(i).is_some_and(|b| b.is_ascii_digit()) {
            while self.at(i).is_some_and(|b| b.is_ascii_digit()) {
                i += 1;
            }
            self.pos = i;
            return Kind::Param;
        }
        // `$tag$`, where the (optional) tag must not start with a digit.
        if self.at(i).is_some_and(is_ident_start) {
            while self.at(i).is_some_and(is_tag_char) {
                i += 1;
            }
        }
        if self.at(i) != Some(b'$') {
            self.pos = open + 1;
            return Kind::Punct;
        }
        let delimiter = &self.src[open..=i];
        let body = i + 1;
        // The body runs to the next identical delimiter; other tags inside
        // (`$a$ $b$ ; $b$ $a$`) are plain text.
        self.pos = match self.src[body..].find(delimiter) {
            Some(n) => body + n + delimiter.len(),
            None => self.bytes.len(),
        };
        Kind::String
    }

    /// At an identifier start: a word, or a string/identifier with a prefix
    /// glued to its quote (`E'..'`, `U&'..'`, `U&".."`, `B'..'`, `X'..'`, `N'..'`).
    fn word(&mut self) -> Kind {
        let start = self.pos;
        while self.at(self.pos).is_some_and(is_ident_char) {
            self.pos += 1;
        }
        if self.pos - start != 1 {
            return Kind::Word;
        }
        let prefix = self.bytes[start].to_ascii_uppercase();
        match (prefix, self.at(self.pos), self.at(self.pos + 1)) {
            (b'E', Some(b'\''), _) => {
                self.pos += 1;
                self.skip_quoted(b'\'', true);
                Kind::String
            }
            (b'B' | b'X' | b'N', Some(b'\''), _) => {
                self.pos += 1;
                self.skip_quoted(b'\'', false);
                Kind::String
            }
            // U& strings escape with `\XXXX`, never `\'`, so they end like standard strings.
            (b'U', Some(b'&'), Some(quote @ (b'\'' | b'"'))) => {
                self.pos += 2;
                self.skip_quoted(quote, false);
                if quote == b'"' {
                    Kind::QuotedIdent
                } else {
                    Kind::String
                }
            }
            _ => Kind::Word,
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        self.skip_whitespace_and_comments();
        let start = self.pos;
        let kind = match self.at(start)? {
            b';' => {
                self.pos += 1;
                Kind::Semicolon
            }
            b'\'' => {
                self.pos += 1;
                self.skip_quoted(b'\'', false);
                Kind::String
            }
            b'"' => {
                self.pos += 1;
                self.skip_quoted(b'"', false);
                Kind::QuotedIdent
            }
            b'$' => self.dollar(),
            b'0'..=b'9' => {
                while self
                    .at(self.pos)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                {
                    self.pos += 1;
                }
                Kind::Number
            }
            b if is_ident_start(b) => self.word(),
            _ => {
                self.pos += 1;
                Kind::Punct
            }
        };
        Some(Token {
            kind,
            start,
            end: self.pos,
        })
    }
}

/// Follows `BEGIN ATOMIC ... END` bodies of SQL-standard functions within
/// one statement, so that the `;` between their inner statements do not end
/// it. `CASE ... END` expressions inside the body also close with `END`,
/// hence the depth count.
#[derive(Default)]
struct AtomicTracker {
    depth: usize,
    after_begin: bool,
    /// After `.` or `AS` a keyword is only a name (`t.end`, `AS case`).
    at_label: bool,
}

impl AtomicTracker {
    fn inside(&self) -> bool {
        self.depth > 0
    }

    fn observe(&mut self, token: Token, text: &str) {
        let word = |kw: &str| token.kind == Kind::Word && text.eq_ignore_ascii_case(kw);
        if !self.at_label {
            let opens_atomic = self.after_begin && word("ATOMIC");
            let opens_case = self.depth > 0 && word("CASE");
            if opens_atomic || opens_case {
                self.depth += 1;
            } else if self.depth > 0 && word("END") {
                self.depth -= 1;
            }
        }
        self.after_begin = !self.at_label && word("BEGIN");
        self.at_label = word("AS") || (token.kind == Kind::Punct && text == ".");
    }
}

/// Cursor over the significant tokens of a statement, for keyword matching.
struct Words<'a> {
    src: &'a str,
    tokens: std::iter::Peekable<Lexer<'a>>,
}

impl<'a> Words<'a> {
    fn new(src: &'a str) -> Self {
        Words {
            src,
            tokens: Lexer::new(src).peekable(),
        }
    }

    fn next(&mut self) -> Option<(Kind, &'a str)> {
        let t = self.tokens.next()?;
        Some((t.kind, &self.src[t.start..t.end]))
    }

    fn peek(&mut self) -> Option<(Kind, &'a str)> {
        let t = *self.tokens.peek()?;
        Some((t.kind, &self.src[t.start..t.end]))
    }

    /// Consumes the next token if it is the unquoted keyword `kw`.
    fn eat(&mut self, kw: &str) -> bool {
        let hit = matches!(self.peek(), Some((Kind::Word, w)) if w.eq_ignore_ascii_case(kw));
        if hit {
            self.tokens.next();
        }
        hit
    }

    /// Consumes the next token if it is the single character `c`.
    fn eat_punct(&mut self, c: u8) -> bool {
        let hit = matches!(self.peek(), Some((Kind::Punct, p)) if p.as_bytes() == [c]);
        if hit {
            self.tokens.next();
        }
        hit
    }

    /// Consumes the next token if it is one of the keywords in `table`, and
    /// returns the value paired with it.
    fn eat_one_of(&mut self, table: &[(&str, &'static str)]) -> Option<&'static str> {
        table
            .iter()
            .find(|(kw, _)| self.eat(kw))
            .map(|&(_, value)| value)
    }
}

/// Line numbers for increasing offsets, counting each newline only once.
struct LineCounter<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter {
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// 1-based line of `offset`; offsets must not decrease between calls.
    fn line_at(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.bytes.len());
        if offset >= self.pos {
            self.line += self.bytes[self.pos..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.pos = offset;
        }
        self.line
    }
}

#[cfg(test)]
mod review_tests {
    use super::*;

    #[test]
    fn transaction_control_is_found() {
        assert!(controls_transactions(
            "BEGIN;\nCREATE TABLE t (x int);\nCOMMIT;"
        ));
        assert!(controls_transactions("create table t (x int); commit"));
        assert!(controls_transactions("START TRANSACTION; SELECT 1; END;"));
        assert!(!controls_transactions(
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\nSELECT 'COMMIT';"
        ));
        assert!(!controls_transactions("-- COMMIT\nSELECT 1;"));
    }

    #[test]
    fn copy_from_stdin_data_is_not_sql() {
        let script = "CREATE TABLE t (a int, b text);\nCOPY public.t (a, b) FROM stdin;\n1\tit's; here\n2\t$x$\n\\.\nSELECT 1;\n";
        let st = split_statements(script);
        assert_eq!(st.len(), 3, "{st:?}");
        assert_eq!(st[1].sql, "COPY public.t (a, b) FROM stdin");
        let data = st[1].copy_data.as_ref().unwrap();
        assert_eq!(data.data, "1\tit's; here\n2\t$x$\n");
        assert_eq!(data.line, 3);
        assert_eq!(&script[data.offset..data.offset + 1], "1");
        assert_eq!((st[2].sql, st[2].line), ("SELECT 1", 6));
        assert!(st[0].copy_data.is_none() && st[2].copy_data.is_none());
        // Without the terminator the data runs to the end, as psql reads it.
        let st = split_statements("COPY t FROM STDIN WITH (FORMAT csv);\r\n1,2\r\n");
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].copy_data.as_ref().unwrap().data, "1,2\r\n");
        // COPY ... TO STDOUT and COPY (query) carry no data.
        for sql in [
            "COPY t TO STDOUT;\n1\n",
            "COPY (SELECT 1 FROM x) TO stdout;\n1\n",
        ] {
            assert!(!has_copy_data(sql), "{sql}");
        }
        assert!(has_copy_data("copy \"T\" from stdin;\n\\.\n"));
    }

    #[test]
    fn detach_partition_concurrently_is_non_transactional() {
        assert!(
            non_transactional_reason("ALTER TABLE m DETACH PARTITION m_2020 CONCURRENTLY")
                .is_some()
        );
        assert!(non_transactional_reason("ALTER TABLE m DETACH PARTITION m_2020").is_none());
        assert!(non_transactional_reason("ALTER TABLE concurrently ADD COLUMN x int").is_none());
    }

    #[test]
    fn mixed_scripts_are_found() {
        assert_eq!(
            mixed_transactionality(
                "CREATE TABLE t (x int);\nCREATE INDEX CONCURRENTLY i ON t (x);"
            ),
            Some((2, "CREATE INDEX CONCURRENTLY"))
        );
        assert_eq!(
            mixed_transactionality("-- only\nCREATE INDEX CONCURRENTLY i ON t (x);"),
            None
        );
        assert_eq!(mixed_transactionality("CREATE TABLE t (x int);"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Just the statement texts.
    fn sqls(script: &str) -> Vec<&str> {
        split_statements(script)
            .into_iter()
            .map(|s| s.sql)
            .collect()
    }

    // ---- splitting: basics ----

    #[test]
    fn splits_simple_statements() {
        assert_eq!(
            sqls("CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n"),
            ["CREATE TABLE t (id int)", "INSERT INTO t VALUES (1)"]
        );
    }

    #[test]
    fn last_statement_without_semicolon() {
        assert_eq!(sqls("SELECT 1;\nSELECT 2\n\n"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(sqls("SELECT 1"), ["SELECT 1"]);
    }

    #[test]
    fn empty_and_comment_only_scripts_give_nothing() {
        assert!(split_statements("").is_empty());
        assert!(split_statements("   \n\t\r\n").is_empty());
        assert!(split_statements(";;  ; \n;").is_empty());
        assert!(split_statements("-- just a comment\n/* and a block */\n").is_empty());
        assert!(split_statements("-- no newline at end").is_empty());
        assert!(split_statements("/* a */ ; -- b\n ; /* c /* d */ */").is_empty());
    }

    #[test]
    fn empty_statements_between_semicolons_are_dropped() {
        assert_eq!(sqls(";SELECT 1;; ;SELECT 2;"), ["SELECT 1", "SELECT 2"]);
    }

    #[test]
    fn leading_comments_skipped_trailing_whitespace_trimmed() {
        let s = split_statements("-- header\n/* doc */  SELECT 1  \n\t;");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].sql, "SELECT 1");
        assert_eq!(s[0].offset, "-- header\n/* doc */  ".len());
        assert_eq!(s[0].line, 2);
    }

    #[test]
    fn comments_inside_statement_are_kept() {
        assert_eq!(
            sqls("SELECT 1 -- one; not the end\n + /* ; */ 2;"),
            ["SELECT 1 -- one; not the end\n + /* ; */ 2"]
        );
        // A trailing line comment of an unterminated last statement stays in it.
        assert_eq!(sqls("SELECT 1 -- end"), ["SELECT 1 -- end"]);
    }

    // ---- quoting ----

    #[test]
    fn semicolon_in_single_quoted_string() {
        assert_eq!(
            sqls("INSERT INTO t VALUES ('a;b');SELECT 2"),
            ["INSERT INTO t VALUES ('a;b')", "SELECT 2"]
        );
    }

    #[test]
    fn doubled_quote_escape_in_string() {
        assert_eq!(
            sqls("SELECT 'it''s; fine';SELECT 2"),
            ["SELECT 'it''s; fine'", "SELECT 2"]
        );
        // An empty string followed by ;
        assert_eq!(sqls("SELECT '';SELECT ''''"), ["SELECT ''", "SELECT ''''"]);
    }

    #[test]
    fn adjacent_strings_are_two_strings() {
        assert_eq!(
            sqls("SELECT 'a' 'b';SELECT 'c'\n'd;'"),
            ["SELECT 'a' 'b'", "SELECT 'c'\n'd;'"]
        );
    }

    #[test]
    fn backslash_does_not_escape_in_standard_string() {
        // 'C:\' is complete at its second quote, so the ; ends the statement.
        assert_eq!(
            sqls(r"SELECT 'C:\';SELECT 2"),
            [r"SELECT 'C:\'", "SELECT 2"]
        );
    }

    #[test]
    fn e_string_backslash_escapes() {
        assert_eq!(
            sqls(r"SELECT E'it\'s;';SELECT 2"),
            [r"SELECT E'it\'s;'", "SELECT 2"]
        );
        assert_eq!(
            sqls(r"SELECT e'a\\';SELECT 2"),
            [r"SELECT e'a\\'", "SELECT 2"]
        );
        assert_eq!(
            sqls(r"SELECT E'a''b;\n';SELECT 2"),
            [r"SELECT E'a''b;\n'", "SELECT 2"]
        );
    }

    #[test]
    fn e_prefix_must_be_a_whole_word() {
        // `name'` is not an E-string: the string is standard and ends at its second quote.
        assert_eq!(
            sqls(r"SELECT name'\';SELECT 2"),
            [r"SELECT name'\'", "SELECT 2"]
        );
    }

    #[test]
    fn unicode_and_other_prefixed_strings() {
        assert_eq!(
            sqls(r"SELECT U&'d\0061t;a' UESCAPE '!';SELECT 2"),
            [r"SELECT U&'d\0061t;a' UESCAPE '!'", "SELECT 2"]
        );
        // U& strings do not treat \' as an escape.
        assert_eq!(
            sqls(r"SELECT u&'\';SELECT 2"),
            [r"SELECT u&'\'", "SELECT 2"]
        );
        assert_eq!(
            sqls(r#"SELECT 1 AS U&"a;b";SELECT B'01', X'1F;', N'n;'"#),
            [r#"SELECT 1 AS U&"a;b""#, "SELECT B'01', X'1F;', N'n;'"]
        );
    }

    #[test]
    fn double_quoted_identifiers() {
        assert_eq!(
            sqls(r#"CREATE TABLE "a;b" ("x""y;" int);SELECT 2"#),
            [r#"CREATE TABLE "a;b" ("x""y;" int)"#, "SELECT 2"]
        );
        // Quotes of the other kind do not open anything inside.
        assert_eq!(
            sqls(r#"SELECT "it's";SELECT '"';SELECT 3"#),
            [r#"SELECT "it's""#, r#"SELECT '"'"#, "SELECT 3"]
        );
    }

    #[test]
    fn dollar_quotes() {
        let script = "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\nSELECT 2;";
        assert_eq!(
            sqls(script),
            [
                "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn tagged_dollar_quotes_nest_different_tags() {
        assert_eq!(
            sqls("SELECT $a$ $b$ ; $b$ ; $a$;SELECT 2"),
            ["SELECT $a$ $b$ ; $b$ ; $a$", "SELECT 2"]
        );
        assert_eq!(
            sqls("DO $body$ BEGIN EXECUTE $q$SELECT ';'$q$; END $body$;SELECT 2"),
            [
                "DO $body$ BEGIN EXECUTE $q$SELECT ';'$q$; END $body$",
                "SELECT 2"
            ]
        );
        // `$$` inside a tagged quote is just text.
        assert_eq!(
            sqls("SELECT $fn$ $$ ; $fn$;SELECT 2"),
            ["SELECT $fn$ $$ ; $fn$", "SELECT 2"]
        );
        // Tags are case-sensitive.
        assert_eq!(
            sqls("SELECT $A$ ; $a$ ; $A$;SELECT 2"),
            ["SELECT $A$ ; $a$ ; $A$", "SELECT 2"]
        );
    }

    #[test]
    fn quotes_inside_dollar_quotes_are_text() {
        assert_eq!(
            sqls("SELECT $$it's; \"x$$;SELECT 2"),
            ["SELECT $$it's; \"x$$", "SELECT 2"]
        );
    }

    #[test]
    fn positional_parameters_are_not_dollar_quotes() {
        assert_eq!(
            sqls("PREPARE p AS SELECT $1 + $2;SELECT 2"),
            ["PREPARE p AS SELECT $1 + $2", "SELECT 2"]
        );
        // A tag may not start with a digit: `$1$` is param $1 then a lone $.
        assert_eq!(sqls("SELECT $1$;SELECT 2"), ["SELECT $1$", "SELECT 2"]);
    }

    #[test]
    fn dollar_inside_identifier_does_not_open_quote() {
        assert_eq!(
            sqls("SELECT a$b$ FROM t;SELECT 2"),
            ["SELECT a$b$ FROM t", "SELECT 2"]
        );
    }

    // ---- comments ----

    #[test]
    fn semicolon_in_comments() {
        assert_eq!(
            sqls("SELECT 1 /* ; */;SELECT 2 -- ;\n;SELECT 3"),
            ["SELECT 1 /* ; */", "SELECT 2 -- ;", "SELECT 3"]
        );
    }

    #[test]
    fn block_comments_nest() {
        assert_eq!(
            sqls("SELECT 1 /* a /* b */ c; */;SELECT 2"),
            ["SELECT 1 /* a /* b */ c; */", "SELECT 2"]
        );
        assert!(split_statements("/* a /* b */ ; */").is_empty());
    }

    #[test]
    fn comment_markers_inside_strings_are_text() {
        assert_eq!(
            sqls("SELECT '--', '/*';SELECT \"/*\";SELECT $$--$$;SELECT 4"),
            [
                "SELECT '--', '/*'",
                "SELECT \"/*\"",
                "SELECT $$--$$",
                "SELECT 4"
            ]
        );
    }

    #[test]
    fn quotes_inside_comments_are_text() {
        assert_eq!(
            sqls("SELECT 1 -- it's\n;/* \"$$ */SELECT 2;"),
            ["SELECT 1 -- it's", "SELECT 2"]
        );
    }

    #[test]
    fn operators_next_to_comments() {
        // `*/*` is multiplication followed by a comment.
        assert_eq!(
            sqls("SELECT 2*/*;*/3;SELECT 4"),
            ["SELECT 2*/*;*/3", "SELECT 4"]
        );
        assert_eq!(sqls("SELECT 2 -1;SELECT 4"), ["SELECT 2 -1", "SELECT 4"]);
    }

    // ---- BEGIN ATOMIC ----

    #[test]
    fn begin_atomic_body_is_one_statement() {
        let script = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  INSERT INTO t VALUES (1);\n  SELECT 1;\nEND;\nSELECT 2;";
        assert_eq!(
            sqls(script),
            [
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  INSERT INTO t VALUES (1);\n  SELECT 1;\nEND",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn begin_atomic_is_case_insensitive_and_tracks_case_end() {
        let script = "create procedure p() begin atomic\n select case when x then case y when 1 then 2 end else 3 end from t;\n update t set x = case when true then 1 end;\n end;\nselect 2";
        assert_eq!(
            sqls(script),
            [
                "create procedure p() begin atomic\n select case when x then case y when 1 then 2 end else 3 end from t;\n update t set x = case when true then 1 end;\n end",
                "select 2"
            ]
        );
    }

    #[test]
    fn begin_atomic_keywords_in_strings_comments_or_names_do_not_count() {
        let script = "CREATE FUNCTION f() RETURNS text BEGIN ATOMIC SELECT 'end'; SELECT \"end\" /* end */ FROM t -- end\n; SELECT t.end, x AS case FROM t; END;SELECT 2";
        assert_eq!(
            sqls(script),
            [
                "CREATE FUNCTION f() RETURNS text BEGIN ATOMIC SELECT 'end'; SELECT \"end\" /* end */ FROM t -- end\n; SELECT t.end, x AS case FROM t; END",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn begin_atomic_needs_whole_words() {
        // `BEGIN;` is a transaction start; `begin_atomic` and `atomically` are names.
        assert_eq!(
            sqls("BEGIN;SELECT begin_atomic;SELECT begin atomically;COMMIT"),
            [
                "BEGIN",
                "SELECT begin_atomic",
                "SELECT begin atomically",
                "COMMIT"
            ]
        );
    }

    #[test]
    fn case_end_outside_atomic_does_not_matter() {
        assert_eq!(
            sqls("SELECT CASE WHEN true THEN 1 END;SELECT 2"),
            ["SELECT CASE WHEN true THEN 1 END", "SELECT 2"]
        );
        assert_eq!(sqls("END;SELECT 2"), ["END", "SELECT 2"]);
    }

    #[test]
    fn state_resets_between_statements() {
        // An unbalanced CASE in one statement does not leak into the next.
        assert_eq!(
            sqls("SELECT CASE;SELECT 2;SELECT 3"),
            ["SELECT CASE", "SELECT 2", "SELECT 3"]
        );
    }

    // ---- offsets and lines ----

    #[test]
    fn offsets_and_lines() {
        let script = "SELECT 1;\n\n-- comment on line 3\n/* line 4 */ SELECT 2;\n  SELECT\n3";
        let s = split_statements(script);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].offset, s[0].line), (0, 1));
        assert_eq!(s[1].sql, "SELECT 2");
        assert_eq!(s[1].line, 4);
        assert_eq!(&script[s[1].offset..s[1].offset + 8], "SELECT 2");
        assert_eq!(s[2].sql, "SELECT\n3");
        assert_eq!(s[2].line, 5);
        assert_eq!(s[2].offset, script.find("SELECT\n3").unwrap());
        for st in &s {
            assert_eq!(line_of_offset(script, st.offset), st.line);
        }
    }

    #[test]
    fn statement_after_comment_on_same_line() {
        let script = "SELECT 1;\nSELECT 2;\n/* c */ -- x\n\n/*\n*/ SELECT 3;";
        let s = split_statements(script);
        assert_eq!(s[2].sql, "SELECT 3");
        assert_eq!(s[2].line, 6);
    }

    #[test]
    fn crlf_input() {
        let script = "SELECT 1;\r\n-- c\r\nSELECT 'a;b'\r\n;\r\nSELECT 3\r\n";
        let s = split_statements(script);
        assert_eq!(
            s.iter().map(|s| s.sql).collect::<Vec<_>>(),
            ["SELECT 1", "SELECT 'a;b'", "SELECT 3"]
        );
        assert_eq!(s.iter().map(|s| s.line).collect::<Vec<_>>(), [1, 3, 5]);
    }

    #[test]
    fn multibyte_text() {
        let script =
            "INSERT INTO t VALUES ('héllo; wörld');\nSELECT ñame FROM \"tàble\";\nSELECT $é$;$é$";
        assert_eq!(
            sqls(script),
            [
                "INSERT INTO t VALUES ('héllo; wörld')",
                "SELECT ñame FROM \"tàble\"",
                "SELECT $é$;$é$"
            ]
        );
    }

    #[test]
    fn line_of_offset_counts_newlines() {
        let text = "a\nbc\r\nd";
        assert_eq!(line_of_offset(text, 0), 1);
        assert_eq!(line_of_offset(text, 1), 1); // the '\n' itself is on line 1
        assert_eq!(line_of_offset(text, 2), 2);
        assert_eq!(line_of_offset(text, 6), 3);
        assert_eq!(line_of_offset(text, text.len()), 3);
        assert_eq!(line_of_offset(text, 1000), 3);
        assert_eq!(line_of_offset("", 0), 1);
        assert_eq!(line_of_offset("", 5), 1);
        // Inside a multi-byte character: still no panic.
        assert_eq!(line_of_offset("é\né", 1), 1);
    }

    // ---- robustness ----

    #[test]
    fn unterminated_constructs_run_to_the_end() {
        assert_eq!(sqls("SELECT 1; SELECT 'abc;"), ["SELECT 1", "SELECT 'abc;"]);
        assert_eq!(sqls("SELECT \"abc;"), ["SELECT \"abc;"]);
        assert_eq!(sqls("SELECT $x$ abc;"), ["SELECT $x$ abc;"]);
        assert_eq!(sqls("SELECT 1 /* a /* b */ ;"), ["SELECT 1 /* a /* b */ ;"]);
        assert_eq!(sqls(r"SELECT E'abc\"), [r"SELECT E'abc\"]);
        assert_eq!(sqls("SELECT U&"), ["SELECT U&"]);
        assert_eq!(
            sqls("CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;"),
            ["CREATE FUNCTION f() BEGIN ATOMIC SELECT 1;"]
        );
    }

    #[test]
    fn never_panics_on_awkward_input() {
        let pieces = [
            "'", "\"", "$", "$$", "$a", "$a$", "$1", "E'", "e", "U&", "u&'", "\\", "--", "/*",
            "*/", "/", "*", "-", ";", "\n", "\r\n", " ", "é", "BEGIN", "ATOMIC", "CASE", "END",
            "x", "1", ".", "AS", "(", ")",
        ];
        // Every ordered pair and triple of pieces, in every position.
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let script = format!("{a}{b}{c}");
                    for st in split_statements(&script) {
                        assert_eq!(&script[st.offset..st.offset + st.sql.len()], st.sql);
                        assert_eq!(st.line, line_of_offset(&script, st.offset));
                        assert!(!st.sql.is_empty());
                    }
                    let _ = non_transactional_reason(&script);
                    let _ = first_non_transactional(&script);
                }
            }
        }
    }

    // ---- non-transactional statements ----

    fn reason(sql: &str) -> Option<&'static str> {
        non_transactional_reason(sql)
    }

    #[test]
    fn create_index_concurrently() {
        assert_eq!(
            reason("CREATE INDEX CONCURRENTLY i ON t (x)"),
            Some("CREATE INDEX CONCURRENTLY")
        );
        assert_eq!(
            reason("create unique index concurrently if not exists i on t (x)"),
            Some("CREATE INDEX CONCURRENTLY")
        );
        assert_eq!(
            reason("-- make it fast\n/* really */ CREATE\n  INDEX\n\tConcurrently ON t (x)"),
            Some("CREATE INDEX CONCURRENTLY")
        );
        assert_eq!(reason("CREATE INDEX i ON t (x)"), None);
        assert_eq!(reason("CREATE INDEX idx_concurrently ON t (x)"), None);
        assert_eq!(reason("CREATE INDEX \"concurrently\" ON t (x)"), None);
        assert_eq!(reason("CREATE UNIQUE INDEX i ON t (x)"), None);
        assert_eq!(
            reason("CREATE INDEX IF NOT EXISTS concurrently ON t (x)"),
            None
        );
    }

    #[test]
    fn drop_index_concurrently() {
        assert_eq!(
            reason("DROP INDEX CONCURRENTLY IF EXISTS i"),
            Some("DROP INDEX CONCURRENTLY")
        );
        assert_eq!(
            reason("drop index\nconcurrently i"),
            Some("DROP INDEX CONCURRENTLY")
        );
        assert_eq!(reason("DROP INDEX i"), None);
        assert_eq!(reason("DROP INDEX IF EXISTS concurrently"), None);
        assert_eq!(reason("DROP TABLE concurrently"), None);
    }

    #[test]
    fn reindex_concurrently() {
        assert_eq!(
            reason("REINDEX INDEX CONCURRENTLY i"),
            Some("REINDEX CONCURRENTLY")
        );
        assert_eq!(
            reason("reindex table concurrently t"),
            Some("REINDEX CONCURRENTLY")
        );
        assert_eq!(
            reason("REINDEX (VERBOSE) TABLE CONCURRENTLY t"),
            Some("REINDEX CONCURRENTLY")
        );
        assert_eq!(
            reason("REINDEX (CONCURRENTLY) TABLE t"),
            Some("REINDEX CONCURRENTLY")
        );
        assert_eq!(
            reason("REINDEX (VERBOSE, CONCURRENTLY true) INDEX i"),
            Some("REINDEX CONCURRENTLY")
        );
        assert_eq!(reason("REINDEX (CONCURRENTLY off) TABLE t"), None);
        assert_eq!(
            reason("REINDEX (CONCURRENTLY 'false', VERBOSE) TABLE t"),
            None
        );
        assert_eq!(reason("REINDEX (CONCURRENTLY 0) INDEX i"), None);
        assert_eq!(reason("REINDEX (TABLESPACE concurrently) TABLE t"), None);
        assert_eq!(reason("REINDEX TABLE t"), None);
        assert_eq!(reason("REINDEX INDEX concurrently_idx"), None);
        assert_eq!(reason("REINDEX (VERBOSE) INDEX i"), None);
    }

    #[test]
    fn reindex_schema_database_system() {
        assert_eq!(reason("REINDEX SCHEMA s"), Some("REINDEX SCHEMA"));
        assert_eq!(
            reason("REINDEX (VERBOSE) DATABASE d"),
            Some("REINDEX DATABASE")
        );
        assert_eq!(reason("reindex system"), Some("REINDEX SYSTEM"));
        assert_eq!(
            reason("REINDEX SCHEMA CONCURRENTLY s"),
            Some("REINDEX CONCURRENTLY")
        );
        assert_eq!(reason("SELECT 'REINDEX SCHEMA s'"), None);
    }

    #[test]
    fn vacuum() {
        assert_eq!(reason("VACUUM"), Some("VACUUM"));
        assert_eq!(reason("vacuum (analyze) t"), Some("VACUUM"));
        assert_eq!(reason("INSERT INTO t VALUES ('VACUUM')"), None);
        assert_eq!(reason("ANALYZE t"), None);
        assert_eq!(reason("SELECT vacuum FROM t"), None);
        assert_eq!(reason("vacuum_t"), None);
    }

    #[test]
    fn alter_system() {
        assert_eq!(
            reason("ALTER SYSTEM SET work_mem = '64MB'"),
            Some("ALTER SYSTEM")
        );
        assert_eq!(reason("alter\n  system reset all"), Some("ALTER SYSTEM"));
        assert_eq!(reason("ALTER TABLE system ADD x int"), None);
        assert_eq!(reason("ALTER ROLE r SET work_mem = '64MB'"), None);
    }

    #[test]
    fn create_and_drop_database() {
        assert_eq!(reason("CREATE DATABASE d"), Some("CREATE DATABASE"));
        assert_eq!(reason("DROP DATABASE IF EXISTS d"), Some("DROP DATABASE"));
        assert_eq!(reason("CREATE TABLE database (x int)"), None);
        assert_eq!(reason("ALTER DATABASE d SET work_mem = '1MB'"), None);
        assert_eq!(reason("CREATE UNIQUE DATABASE d"), None);
    }

    #[test]
    fn create_and_drop_tablespace() {
        assert_eq!(
            reason("CREATE TABLESPACE ts LOCATION '/x'"),
            Some("CREATE TABLESPACE")
        );
        assert_eq!(reason("drop tablespace ts"), Some("DROP TABLESPACE"));
        assert_eq!(reason("ALTER TABLESPACE ts RENAME TO ts2"), None);
        assert_eq!(reason("CREATE TABLE t (x int) TABLESPACE ts"), None);
    }

    #[test]
    fn create_and_drop_subscription() {
        assert_eq!(
            reason("CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p"),
            Some("CREATE SUBSCRIPTION")
        );
        assert_eq!(
            reason("DROP SUBSCRIPTION IF EXISTS s"),
            Some("DROP SUBSCRIPTION")
        );
        assert_eq!(reason("ALTER SUBSCRIPTION s REFRESH PUBLICATION"), None);
        assert_eq!(reason("CREATE PUBLICATION p FOR ALL TABLES"), None);
    }

    #[test]
    fn discard_all() {
        assert_eq!(reason("DISCARD ALL"), Some("DISCARD ALL"));
        assert_eq!(reason("discard\nall"), Some("DISCARD ALL"));
        assert_eq!(reason("DISCARD PLANS"), None);
        assert_eq!(reason("DISCARD TEMP"), None);
    }

    #[test]
    fn transactional_statements() {
        for sql in [
            "",
            "-- only a comment",
            "SELECT 1",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
            "ALTER TYPE mood ADD VALUE 'meh'",
            "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh' BEFORE 'sad'",
            "CREATE TABLE t (x int)",
            "INSERT INTO t VALUES ('CREATE INDEX CONCURRENTLY i ON t (x)')",
            "COMMENT ON TABLE t IS 'VACUUM'",
            "\"VACUUM\"",
            "$$VACUUM$$",
            "/* VACUUM */ SELECT 1",
            "-- DROP DATABASE d\nSELECT 1",
            "BEGIN",
        ] {
            assert_eq!(reason(sql), None, "{sql:?}");
        }
    }

    #[test]
    fn first_non_transactional_reports_line_and_reason() {
        let script = "CREATE TABLE t (x int);\n-- the slow part\nCREATE INDEX CONCURRENTLY i ON t (x);\nVACUUM t;";
        assert_eq!(
            first_non_transactional(script),
            Some((3, "CREATE INDEX CONCURRENTLY"))
        );
        assert_eq!(
            first_non_transactional("SELECT 'VACUUM;';\r\n\r\n  vacuum;"),
            Some((3, "VACUUM"))
        );
        assert_eq!(
            first_non_transactional("CREATE TABLE t (x int);\nCREATE INDEX i ON t (x);"),
            None
        );
        assert_eq!(first_non_transactional("SELECT $$;VACUUM;$$;"), None);
        assert_eq!(first_non_transactional(""), None);
    }
}
