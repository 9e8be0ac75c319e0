//! SQL injection by tokenisation, in the way libinjection does it.
//!
//! The value is tokenised as SQL three times: as it stands, as if it continued a single-quoted
//! string literal, and as if it continued a double-quoted one (the three places a parameter ends up
//! in a query). Each token becomes one character of a *fingerprint* (`s` string, `1` number, `n`
//! name, `&` boolean operator, `o` operator, `U` UNION, `E` SELECT, …). Decisions are made on the
//! shape of that fingerprint (the grammar of an injection: a string closed then a boolean operator
//! then a comparison; a UNION then a SELECT; a separator then a statement), never on word lists
//! alone, so `O'Brien`, `union was a great select` or `DO OR NOT DO` stay benign while
//! `x' OR 'a'='a` does not.
//!
//! Linear: one pass per context, a bounded number of tokens, rules that look a bounded distance
//! ahead.

use crate::features;

/// Most tokens kept per context (about 40 KB of dense SQL); the rest of a longer value is not
/// tokenised.
pub const MAX_TOKENS: usize = 4096;

/// Where the value is assumed to sit in the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// As it stands (a number or a bare expression).
    None,
    /// Inside `'…'`.
    SingleQuote,
    /// Inside `"…"`.
    DoubleQuote,
}

/// Why a value was flagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Context in which the value parsed as an injection.
    pub context: Context,
    /// First token kinds (at most 16) of that parse.
    pub tokens: String,
    /// Rule that matched (see [`crate::rules::RULES`]).
    pub rule_id: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: u8,
    start: u32,
    end: u32,
    /// Function: time/error/file/system function. Variable: `@@system`. String: word-like content.
    strong: bool,
    /// Keyword sub-kind (see `kw_sub`), 0 otherwise.
    sub: u8,
}

// Keyword sub-kinds for the few places where the exact keyword matters.
const SUB_ORDER_GROUP: u8 = 1;
const SUB_BY: u8 = 2;
const SUB_OBJECT: u8 = 3; // table, database, …
const SUB_SET: u8 = 4;
const SUB_LIMIT: u8 = 5; // limit, procedure, offset
const SUB_ALL: u8 = 6; // all, distinct
const SUB_DELAY: u8 = 7;
const SUB_FILE: u8 = 8; // outfile, dumpfile
const SUB_PLUSMINUS: u8 = 9;
const SUB_CMP: u8 = 10; // comparison operator
const SUB_WEAK_FN: u8 = 11; // function name that is also a word (left, count, …)

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.') || b >= 0x80
}

fn classify(word: &str, next_is_paren: bool) -> (u8, bool, u8) {
    // Lower-case into a stack buffer: no allocation per word. Longer words are never keywords.
    let mut buf = [0u8; 40];
    if word.len() > buf.len() || !word.is_ascii() {
        return (b'n', false, 0);
    }
    for (d, c) in buf.iter_mut().zip(word.bytes()) {
        *d = c.to_ascii_lowercase();
    }
    let lw = std::str::from_utf8(&buf[..word.len()]).unwrap_or("");
    let last = lw.rsplit('.').next().unwrap_or(lw);
    if next_is_paren {
        let first = lw.split('.').next().unwrap_or(lw);
        if let Some(strong) = function(last).or_else(|| function(first)) {
            let weak = matches!(last, "left" | "right" | "count" | "space" | "repeat" | "position" | "length" | "if");
            return (b'f', strong, if weak { SUB_WEAK_FN } else { 0 });
        }
    }
    if last.starts_with("xp_") || last.starts_with("sp_") {
        return (b'f', true, 0);
    }
    if lw.contains('.') {
        return (b'n', false, 0);
    }
    let (k, sub) = match lw {
        "union" | "intersect" | "except" | "minus" => (b'U', 0),
        "select" => (b'E', 0),
        "insert" | "update" | "delete" | "drop" | "create" | "alter" | "truncate" | "exec" | "execute" | "declare"
        | "shutdown" | "waitfor" | "grant" | "revoke" | "rename" | "handler" | "merge" | "backup" | "dbcc" => (b'D', 0),
        "from" => (b'F', 0),
        "where" | "having" => (b'W', 0),
        "into" | "values" => (b'I', 0),
        "and" | "or" | "xor" => (b'&', 0),
        "like" | "rlike" | "regexp" | "glob" | "is" | "in" | "between" | "sounds" => (b'o', SUB_CMP),
        "mod" | "div" | "collate" | "escape" => (b'o', 0),
        "not" => (b'!', 0),
        "true" | "false" | "null" | "unknown" => (b'1', 0),
        "order" | "group" => (b'k', SUB_ORDER_GROUP),
        "by" => (b'k', SUB_BY),
        "table" | "database" | "schema" | "view" | "procedure" | "function" | "user" | "index" | "trigger"
        | "login" => (b'k', SUB_OBJECT),
        "set" => (b'k', SUB_SET),
        "limit" | "offset" => (b'k', SUB_LIMIT),
        "all" | "distinct" | "distinctrow" => (b'k', SUB_ALL),
        "delay" => (b'k', SUB_DELAY),
        "outfile" | "dumpfile" => (b'k', SUB_FILE),
        "as"
        | "on"
        | "join"
        | "inner"
        | "outer"
        | "cross"
        | "natural"
        | "top"
        | "case"
        | "when"
        | "then"
        | "else"
        | "end"
        | "exists"
        | "any"
        | "some"
        | "asc"
        | "desc"
        | "procedure analyse"
        | "using"
        | "straight_join"
        | "sql_calc_found_rows"
        | "lock"
        | "share"
        | "mode"
        | "nowait" => (b'k', 0),
        _ => (b'n', 0),
    };
    (k, false, sub)
}

/// `Some(strong)` when `name` is a SQL function; strong ones (time, error, file, system) have no
/// business in a parameter.
fn function(name: &str) -> Option<bool> {
    let strong = matches!(
        name,
        "sleep"
            | "benchmark"
            | "pg_sleep"
            | "extractvalue"
            | "updatexml"
            | "load_file"
            | "xp_cmdshell"
            | "xp_dirtree"
            | "sp_executesql"
            | "sp_oacreate"
            | "openrowset"
            | "opendatasource"
            | "utl_http"
            | "utl_inaddr"
            | "get_host_address"
            | "request"
            | "dbms_pipe"
            | "receive_message"
            | "dbms_lock"
            | "randomblob"
            | "name_const"
            | "geometrycollection"
            | "multipoint"
            | "polygon"
            | "multipolygon"
            | "linestring"
            | "multilinestring"
            | "fn_varbintohexstr"
            | "dbms_xmlgen"
            | "xmltype"
            | "ctxsys"
            | "drithsx"
            | "sys_context"
            | "load_extension"
            | "pg_read_file"
            | "lo_import"
    );
    if strong {
        return Some(true);
    }
    matches!(
        name,
        "if" | "ifnull"
            | "isnull"
            | "nullif"
            | "coalesce"
            | "ascii"
            | "ord"
            | "char"
            | "chr"
            | "nchar"
            | "concat"
            | "concat_ws"
            | "group_concat"
            | "string_agg"
            | "substring"
            | "substr"
            | "mid"
            | "length"
            | "len"
            | "char_length"
            | "lower"
            | "upper"
            | "hex"
            | "unhex"
            | "md5"
            | "sha1"
            | "sha2"
            | "version"
            | "database"
            | "user"
            | "current_user"
            | "system_user"
            | "session_user"
            | "schema"
            | "count"
            | "cast"
            | "convert"
            | "exp"
            | "floor"
            | "rand"
            | "json_extract"
            | "json_depth"
            | "json_keys"
            | "make_set"
            | "elt"
            | "instr"
            | "locate"
            | "position"
            | "reverse"
            | "strcmp"
            | "row_count"
            | "last_insert_id"
            | "connection_id"
            | "uuid"
            | "unix_timestamp"
            | "sysdate"
            | "pi"
            | "greatest"
            | "least"
            | "regexp_like"
            | "regexp_substr"
            | "db_name"
            | "user_name"
            | "host_name"
            | "has_dbaccess"
            | "is_srvrolemember"
            | "quotename"
            | "iif"
            | "bit_length"
            | "octet_length"
            | "trim"
            | "ltrim"
            | "rtrim"
            | "space"
            | "repeat"
            | "rpad"
            | "lpad"
            | "left"
            | "right"
            | "ascii_str"
            | "to_char"
            | "to_number"
            | "current_database"
            | "pg_user"
            | "table_name"
            | "column_name"
            | "all_tables"
            | "sqlite_version"
            | "typeof"
    )
    .then_some(false)
}

struct Lexer<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    toks: Vec<Tok>,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Self { s, b: s.as_bytes(), i: 0, toks: Vec::with_capacity((s.len() / 4).clamp(4, 256)) }
    }

    fn push(&mut self, kind: u8, start: usize, end: usize, strong: bool, sub: u8) {
        if self.toks.len() < MAX_TOKENS {
            let c = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
            self.toks.push(Tok { kind, start: c(start), end: c(end), strong, sub });
        }
    }

    /// End (exclusive, past the closing quote) of a string whose body starts at `from`.
    fn string_end(&self, from: usize, q: u8) -> (usize, bool) {
        let mut j = from;
        while j < self.b.len() {
            let c = self.b[j];
            if c == b'\\' {
                j += 2;
                continue;
            }
            if c == q {
                if self.b.get(j + 1) == Some(&q) {
                    j += 2;
                    continue;
                }
                return (j + 1, true);
            }
            j += 1;
        }
        (self.b.len(), false)
    }

    fn next_non_space(&self, mut j: usize) -> Option<u8> {
        while j < self.b.len() {
            let c = self.b[j];
            if is_space(c) {
                j += 1;
                continue;
            }
            if c == b'/' && self.b.get(j + 1) == Some(&b'*') {
                // Skip an inline comment when looking for the `(` of a call.
                let window = &self.b[j + 2..self.b.len().min(j + 2 + 256)];
                match memchr::memmem::find(window, b"*/") {
                    Some(p) => {
                        j += 2 + p + 2;
                        continue;
                    }
                    None => return None,
                }
            }
            return Some(c);
        }
        None
    }

    fn run(mut self, ctx: Context) -> Vec<Tok> {
        match ctx {
            Context::None => {}
            Context::SingleQuote | Context::DoubleQuote => {
                let q = if ctx == Context::SingleQuote { b'\'' } else { b'"' };
                let (end, closed) = self.string_end(0, q);
                let body = &self.b[..end.saturating_sub(usize::from(closed))];
                let wordlike = !body.is_empty() && body.len() <= 64 && !body.iter().any(|c| is_space(*c));
                self.push(b's', 0, end, wordlike, 0);
                self.i = end;
            }
        }
        while self.i < self.b.len() && self.toks.len() < MAX_TOKENS {
            self.step();
        }
        self.toks
    }

    fn step(&mut self) {
        let b = self.b;
        let i = self.i;
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            _ if is_space(c) => self.i += 1,
            b'\'' | b'"' => {
                let (end, _) = self.string_end(i + 1, c);
                self.push(b's', i, end, false, 0);
                self.i = end;
            }
            b'`' => {
                let end = memchr::memchr(b'`', &b[i + 1..]).map_or(b.len(), |p| i + 1 + p + 1);
                self.push(b'n', i, end, false, 0);
                self.i = end;
            }
            b'-' if next == Some(b'-') => self.line_comment(i),
            b'#' => self.line_comment(i),
            b'/' if next == Some(b'*') => {
                if b.get(i + 2) == Some(&b'!') {
                    // MySQL executable comment: its content is code.
                    let mut j = i + 3;
                    while j < b.len() && j < i + 8 && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    self.i = j;
                } else {
                    let end = memchr::memmem::find(&b[i + 2..], b"*/").map_or(b.len(), |p| i + 2 + p + 2);
                    self.push(b'c', i, end, false, 0);
                    self.i = end;
                }
            }
            b'*' if next == Some(b'/') => self.i += 2,
            b'(' | b')' | b',' | b';' => {
                self.push(c, i, i + 1, false, 0);
                self.i += 1;
            }
            b'0'..=b'9' => self.number(i),
            b'.' if next.is_some_and(|d| d.is_ascii_digit()) => self.number(i),
            b'@' => {
                let mut j = i + 1;
                let sys = b.get(j) == Some(&b'@');
                if sys {
                    j += 1;
                }
                let st = j;
                while j < b.len() && (is_word(b[j]) || b[j] == b'@') {
                    j += 1;
                }
                if j > st {
                    self.push(b'v', i, j, sys, 0);
                }
                self.i = j.max(i + 1);
            }
            b'=' | b'<' | b'>' | b'!' | b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'|' | b'&' | b'~' | b':' => {
                self.operator(i)
            }
            _ if is_word(c) => self.word(i),
            _ => self.i += 1,
        }
    }

    fn line_comment(&mut self, i: usize) {
        let end = memchr::memchr(b'\n', &self.b[i..]).map_or(self.b.len(), |p| i + p);
        self.push(b'c', i, end, false, 0);
        self.i = end;
    }

    fn operator(&mut self, i: usize) {
        let b = self.b;
        let two = b.get(i..i + 2).unwrap_or(&[]);
        let three = b.get(i..i + 3).unwrap_or(&[]);
        let (len, kind) = if three == b"<=>" {
            (3, b'o')
        } else if two == b"||" || two == b"&&" {
            (2, b'&')
        } else if matches!(two, b"<=" | b">=" | b"<>" | b"!=" | b":=" | b"<<" | b">>" | b"!<" | b"!>" | b"->") {
            (2, b'o')
        } else if matches!(b[i], b'!' | b'~') {
            (1, b'!')
        } else if b[i] == b':' {
            (1, 0)
        } else {
            (1, b'o')
        };
        if kind != 0 {
            let op = &b[i..i + len];
            let sub = if len == 1 && matches!(b[i], b'+' | b'-') {
                SUB_PLUSMINUS
            } else if matches!(op, b"=" | b"<" | b">" | b"<=" | b">=" | b"<>" | b"!=" | b"<=>" | b"!<" | b"!>") {
                SUB_CMP
            } else {
                0
            };
            self.push(kind, i, i + len, false, sub);
        }
        self.i = i + len;
    }

    fn number(&mut self, i: usize) {
        let b = self.b;
        let mut j = i;
        if b[j] == b'0' && matches!(b.get(j + 1), Some(b'x' | b'X')) {
            j += 2;
            while j < b.len() && b[j].is_ascii_hexdigit() {
                j += 1;
            }
        } else if b[j] == b'0' && matches!(b.get(j + 1), Some(b'b' | b'B')) && matches!(b.get(j + 2), Some(b'0' | b'1'))
        {
            j += 2;
            while j < b.len() && matches!(b[j], b'0' | b'1') {
                j += 1;
            }
        } else {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if b.get(j) == Some(&b'.') {
                j += 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
            }
            if matches!(b.get(j), Some(b'e' | b'E')) {
                let mut k = j + 1;
                if matches!(b.get(k), Some(b'+' | b'-')) {
                    k += 1;
                }
                if b.get(k).is_some_and(u8::is_ascii_digit) {
                    while k < b.len() && b[k].is_ascii_digit() {
                        k += 1;
                    }
                    j = k;
                }
            }
        }
        // A number glued to letters: `1union` is MySQL for `1 union`; `1st` is a word.
        if j < b.len() && is_word(b[j]) && b[j] != b'.' {
            let mut k = j;
            while k < b.len() && is_word(b[k]) {
                k += 1;
            }
            let (kind, _, _) = classify(self.s.get(j..k).unwrap_or(""), false);
            if matches!(kind, b'U' | b'&' | b'E' | b'F' | b'W' | b'o') {
                self.push(b'1', i, j, false, 0);
                self.i = j;
                return;
            }
            self.push(b'n', i, k, false, 0);
            self.i = k;
            return;
        }
        self.push(b'1', i, j, false, 0);
        self.i = j;
    }

    fn word(&mut self, i: usize) {
        let b = self.b;
        let mut j = i;
        while j < b.len() && is_word(b[j]) {
            j += 1;
        }
        let w = self.s.get(i..j).unwrap_or("");
        if w.len() > 64 {
            self.push(b'n', i, j, false, 0);
        } else {
            let paren = self.next_non_space(j) == Some(b'(');
            let (kind, strong, sub) = classify(w, paren);
            self.push(kind, i, j, strong, sub);
        }
        self.i = j;
    }
}

/// Comment tokens inside the value act as whitespace (`UNION/**/SELECT`); only a trailing comment
/// (the truncation of the rest of the query) is kept. `ORDER BY`, `UNION ALL`, unary signs and `NOT`
/// fold away.
fn fold(toks: Vec<Tok>) -> Vec<Tok> {
    let n = toks.len();
    let mut out: Vec<Tok> = Vec::with_capacity(n);
    for (idx, t) in toks.into_iter().enumerate() {
        if t.kind == b'c' && idx + 1 != n {
            continue;
        }
        if t.kind == b'!' {
            continue;
        }
        if let Some(prev) = out.last_mut() {
            if prev.kind == b'k' && prev.sub == SUB_ORDER_GROUP && t.kind == b'k' && t.sub == SUB_BY {
                prev.kind = b'B';
                prev.end = t.end;
                continue;
            }
            if prev.kind == b'U' && t.kind == b'k' && t.sub == SUB_ALL {
                continue;
            }
        }
        if t.kind == b'o' && t.sub == SUB_PLUSMINUS {
            let unary = out.last().is_none_or(|p| b"o&(,kEWUD;IF".contains(&p.kind));
            if unary {
                continue;
            }
        }
        out.push(t);
    }
    out
}

fn kinds(toks: &[Tok]) -> Vec<u8> {
    toks.iter().map(|t| t.kind).collect()
}

/// Checks the grammar rules on one context's tokens.
fn rules(ctx: Context, t: &[Tok], s: &str) -> Option<&'static str> {
    let k = kinds(t);
    let at = |i: usize| k.get(i).copied().unwrap_or(0);
    let sub = |i: usize| t.get(i).map_or(0, |x| x.sub);
    let n = k.len();
    let literal = |c: u8| matches!(c, b'1' | b's' | b'v');
    let cmp = |i: usize| at(i) == b'o' && sub(i) == SUB_CMP;

    for i in 0..n {
        match k[i] {
            // UNION [ALL] [(] SELECT.
            b'U' if at(i + 1) == b'E' || at(i + 1) == b'(' && at(i + 2) == b'E' => return Some("sqli-union"),
            // `;` then a statement with SQL structure after its verb.
            b';' if matches!(at(i + 1), b'E' | b'D') && statement_follows(&k, t, i + 1) => return Some("sqli-stacked"),
            // DECLARE @x, EXEC xp_cmdshell: statements that only exist in SQL.
            b'D' if at(i + 1) == b'v' || at(i + 1) == b'f' && t[i + 1].strong => return Some("sqli-stacked"),
            // Time/error/file/system function call, @@system variable.
            b'f' if t[i].strong && at(i + 1) == b'(' => return Some("sqli-function"),
            b'v' if t[i].strong => return Some("sqli-sysvar"),
            // AND/OR then a comparison of literals, or a function call: `OR 1=1`, `AND 'a'='a'`,
            // `AND ascii(…)`.
            b'&' => {
                let mut j = i + 1;
                while at(j) == b'(' && j < i + 4 {
                    j += 1;
                }
                if literal(at(j))
                    && cmp(j + 1)
                    && matches!(at(j + 2), b'1' | b's' | b'v' | b'f' | b'(')
                    && !(ctx == Context::None && inequalities_joined_by_and(&k, t, s, i))
                {
                    return Some("sqli-tautology");
                }
                if at(j) == b'f' && at(j + 1) == b'(' && !t[j].weak() {
                    return Some("sqli-tautology");
                }
            }
            // WHERE/HAVING on literals: `having 1=1`, `where (1 or 1)`.
            b'W' => {
                let mut j = i + 1;
                while at(j) == b'(' && j < i + 4 {
                    j += 1;
                }
                if literal(at(j)) && (cmp(j + 1) || at(j + 1) == b'&') {
                    return Some("sqli-breakout-clause");
                }
            }
            // ORDER BY <number> at the end of a clause.
            b'B' if at(i + 1) == b'1' && matches!(at(i + 2), 0 | b'c' | b',' | b';' | b')' | b'&') => {
                return Some("sqli-breakout-clause");
            }
            _ => {}
        }
    }

    // Breakouts: the value closes a string (quote contexts) or ends a number/name (no context).
    let mut p0 = 0;
    if ctx == Context::None {
        while at(p0) == b'(' && p0 < 8 {
            p0 += 1;
        }
    }
    let first = at(p0);
    let breakout_start = match ctx {
        Context::None => matches!(first, b'1' | b'n'),
        _ => first == b's',
    };
    let quoted = ctx != Context::None;
    let symbolic = |i: usize| {
        t.get(i)
            .and_then(|x| s.get(x.start as usize..x.end as usize))
            .is_some_and(|o| !o.bytes().any(|c| c.is_ascii_alphabetic()))
    };
    if quoted && n == 3 && (cmp(1) || at(1) == b'&') && symbolic(1) && at(2) == b's' {
        // The whole value is `x' <op> 'y`: an operator spliced between two strings.
        return Some("sqli-tautology");
    }
    if breakout_start {
        let mut p = p0 + 1;
        // The first operand may continue with arithmetic (`HOPE*1`, `1-1`, `17,23`).
        if ctx == Context::None {
            while (at(p) == b'o' && sub(p) != SUB_CMP || at(p) == b',')
                && matches!(at(p + 1), b'1' | b'n')
                && p < p0 + 12
            {
                p += 2;
            }
        }
        while at(p) == b')' {
            p += 1;
        }
        let parens = p > p0 + 1 && k[p0 + 1..p].contains(&b')');
        let numeric = ctx == Context::None && first == b'1';
        let strong_value = quoted || parens;
        match at(p) {
            b'U' if matches!(at(p + 1), 0 | b'c' | b'1' | b'(') => return Some("sqli-union"),
            b'(' if at(p + 1) == b'E' => return Some("sqli-breakout-clause"),
            b'&' => {
                let x = at(p + 1);
                let y = at(p + 2);
                let hit = match x {
                    b'1' | b's' | b'v' => {
                        cmp(p + 2)
                            || y == b'o' && strong_value
                            || matches!(y, b'B' | b'W' | b'U' | b'c' | b';') && (strong_value || numeric)
                            || strong_value && matches!(y, 0 | b'&' | b')')
                    }
                    b'n' => strong_value && (y == b'o' || y == b'('),
                    b'(' => strong_value && matches!(y, b'1' | b's' | b'n' | b'E' | b'f' | b'v' | b'('),
                    b'f' => y == b'(' && (strong_value || numeric || t.get(p + 1).is_some_and(|f| f.strong)),
                    b'E' => strong_value,
                    _ => false,
                };
                if hit {
                    return Some("sqli-tautology");
                }
            }
            b'c' if p + 1 == n => {
                let short = t.get(p).is_some_and(|c| short_comment(s, c));
                if parens || quoted && t[p0].strong && short {
                    return Some("sqli-breakout-comment");
                }
                if numeric && short {
                    return Some("sqli-number-comment");
                }
            }
            b'o' => {
                let x = at(p + 1);
                let y = at(p + 2);
                if x == b'f' && y == b'(' && !t[p + 1].weak() || x == b'(' && y == b'E' || x == b'E' && strong_value {
                    return Some("sqli-breakout-clause");
                }
                if strong_value && literal_or_name(x) && matches!(y, b'&' | b'c' | b';' | b'U') {
                    return Some("sqli-breakout-clause");
                }
                if quoted && x == b's' && y == 0 {
                    return Some("sqli-breakout-concat");
                }
            }
            b'k' if strong_value && sub(p) == SUB_LIMIT && at(p + 1) == b'1' => return Some("sqli-breakout-clause"),
            b'I' if strong_value && (at(p + 1) == b'v' || at(p + 1) == b'k' && sub(p + 1) == SUB_FILE) => {
                return Some("sqli-breakout-clause");
            }
            b'D' | b'E' if quoted && statement_follows(&k, t, p) => return Some("sqli-stacked"),
            _ => {}
        }
    }

    if ctx == Context::None {
        // An expression closed and the rest of the query commented out: `( @a OR 1 ) --`.
        if n >= 3 && k[n - 1] == b'c' && matches!(k[n - 2], b')' | b's' | b'1' | b'v') {
            let sqlish = k[..n - 1].iter().any(|c| matches!(c, b's' | b'v' | b'f' | b'E' | b'U' | b'&'));
            let words = k.iter().filter(|c| **c == b'n').count();
            let parens = k.contains(&b'(') && k[n - 2] == b')';
            if sqlish && words <= 2 && (parens || k[..n - 1].iter().all(|c| b"()s1vfEU&o,".contains(c))) {
                return Some("sqli-breakout-comment");
            }
        }
        // A value that is a chain of SQL function calls: `ascii(substring(version(),1,1))`.
        if first == b'f' && at(p0 + 1) == b'(' && k[p0 + 2..].iter().any(|c| matches!(c, b'f' | b'E' | b'v')) {
            return Some("sqli-function");
        }
        // Whole statements (PL2: a support ticket may quote SQL).
        for i in 0..n {
            if matches!(k[i], b'E' | b'D') && statement_follows(&k, t, i) && (i == 0 || k[i - 1] != b'n') {
                if k[i] == b'D' && !full_statement(&k, t, i) {
                    continue;
                }
                return Some("sqli-statement");
            }
        }
    }
    None
}

/// Arithmetic in prose: `5 < 10 and 10 > 5`. The boolean operator at `i` is the word AND between
/// two inequalities of numbers (`<`, `>`, `<=`, `>=`), and the value has no other SQL structure
/// (no string, comment, parenthesis, separator, variable, call or keyword). Such a value can only
/// narrow a query it is spliced into (AND, no `=` tautology, nothing broken out of), so it is not
/// flagged; `1 and 2>1` (a bare operand before the AND), `0<1 or 2>1` (OR widens) and
/// `5<10 and 1=1` (equality) still are.
fn inequalities_joined_by_and(k: &[u8], t: &[Tok], s: &str, i: usize) -> bool {
    let text = |j: usize| t.get(j).and_then(|x| s.get(x.start as usize..x.end as usize)).unwrap_or("");
    let inequality = |j: usize| {
        k.get(j) == Some(&b'1')
            && k.get(j + 1) == Some(&b'o')
            && matches!(text(j + 1), "<" | ">" | "<=" | ">=")
            && k.get(j + 2) == Some(&b'1')
    };
    i >= 3
        && text(i).eq_ignore_ascii_case("and")
        && inequality(i - 3)
        && inequality(i + 1)
        && k.iter().all(|c| matches!(c, b'1' | b'n' | b'o' | b'&' | b','))
}

fn literal_or_name(c: u8) -> bool {
    matches!(c, b'1' | b's' | b'n' | b'v')
}

/// A comment with (almost) nothing in it: the tail of an injection, not prose after a `#`.
fn short_comment(s: &str, c: &Tok) -> bool {
    let body = s.get(c.start as usize..c.end as usize).unwrap_or("");
    let body = body.trim_start_matches(['-', '#', '/', '*']).trim_end_matches(['*', '/']).trim();
    body.len() <= 3 || !body.starts_with(|ch: char| ch.is_alphanumeric())
}

impl Tok {
    /// Function names that are also common words before a parenthesis in prose.
    fn weak(&self) -> bool {
        self.sub == SUB_WEAK_FN
    }
}

/// Whether the tokens after the statement verb at `i` look like SQL rather than an English
/// sentence that happens to start with "select" or "update".
fn statement_follows(k: &[u8], t: &[Tok], i: usize) -> bool {
    let at = |j: usize| k.get(j).copied().unwrap_or(0);
    match k[i] {
        b'E' => {
            if at(i + 1) == b'f' || at(i + 1) == b'v' {
                return true;
            }
            // SELECT <list> FROM <source>, with a list or a WHERE clause that is not just words.
            let mut j = i + 1;
            let mut list_sql = false;
            while j < k.len() && j < i + 64 {
                match k[j] {
                    b'F' => break,
                    b'1' | b's' | b'v' | b'f' | b'o' | b',' | b'(' | b')' => list_sql = true,
                    b'n' | b'k' => {}
                    _ => return false,
                }
                j += 1;
            }
            if at(j) != b'F' || !matches!(at(j + 1), b'n' | b'(' | b'v') {
                return false;
            }
            let where_cmp = (j + 2..k.len().min(j + 8)).any(|w| k[w] == b'W' && at(w + 2) == b'o');
            list_sql || where_cmp || matches!(at(j + 2), b'c' | b';' | b'B' | b'U' | b'k')
        }
        b'D' => {
            matches!(at(i + 1), b'v' | b'f' | b'I' | b'k' | b'F')
                || at(i + 1) == b'n' && at(i + 2) == b'k' && t.get(i + 2).is_some_and(|x| x.sub == SUB_SET)
        }
        _ => false,
    }
}

/// For a bare statement verb outside a stacked query: the specific statement shapes.
fn full_statement(k: &[u8], t: &[Tok], i: usize) -> bool {
    let at = |j: usize| k.get(j).copied().unwrap_or(0);
    match at(i + 1) {
        b'I' => at(i + 2) == b'n' && matches!(at(i + 3), b'(' | b'I' | b'E'),
        b'k' => {
            let sub = t.get(i + 1).map_or(0, |x| x.sub);
            (sub == SUB_OBJECT && at(i + 2) == b'n') || (sub == SUB_DELAY && at(i + 2) == b's')
        }
        b'n' => at(i + 2) == b'k' && t.get(i + 2).is_some_and(|x| x.sub == SUB_SET) && at(i + 4) == b'o',
        b'F' => at(i + 2) == b'n' && at(i + 3) == b'W',
        b'v' | b'f' => true,
        _ => false,
    }
}

fn fingerprint_of(ctx: Context, s: &str) -> Option<Fingerprint> {
    let toks = fold(Lexer::new(s).run(ctx));
    let rule_id = rules(ctx, &toks, s)?;
    let tokens = toks.iter().take(16).map(|t| char::from(t.kind)).collect();
    Some(Fingerprint { context: ctx, tokens, rule_id })
}

/// The token fingerprint of `s` in one context (for tests and tooling).
#[must_use]
pub fn tokens(s: &str, ctx: Context) -> String {
    fold(Lexer::new(s).run(ctx)).iter().take(64).map(|t| char::from(t.kind)).collect()
}

/// A necessary condition for any rule: a quote, a statement separator, a call, a comment, a
/// system variable, a symbolic boolean operator, or a SQL keyword as a word. Cheap, and false for
/// most benign values (ids, dates, e-mail addresses, plain names), which then skip tokenisation.
#[must_use]
pub fn may_match(s: &str) -> bool {
    let b = s.as_bytes();
    let mut prev = 0u8;
    for &c in b {
        if matches!(c, b'\'' | b'"' | b'`' | b';' | b'(' | b'#')
            || matches!((prev, c), (b'-', b'-') | (b'/', b'*') | (b'@', b'@') | (b'&', b'&') | (b'|', b'|'))
        {
            return true;
        }
        prev = c;
    }
    has_keyword(sql_words(b))
}

/// SQL keywords that can start or join an injection (a word of the value equal to one of these
/// is necessary for every rule without a quote context).
const KEYWORD_WORDS: &[&[u8]] = &[
    b"union",
    b"intersect",
    b"except",
    b"minus",
    b"and",
    b"or",
    b"xor",
    b"where",
    b"having",
    b"by",
    b"limit",
    b"offset",
    b"into",
    b"select",
    b"insert",
    b"update",
    b"delete",
    b"drop",
    b"create",
    b"alter",
    b"truncate",
    b"exec",
    b"execute",
    b"declare",
    b"shutdown",
    b"waitfor",
    b"grant",
    b"revoke",
    b"rename",
    b"handler",
    b"merge",
    b"backup",
    b"dbcc",
];

/// Word operators: they make a comparison without an operator character.
const OPERATOR_WORDS: &[&[u8]] = &[
    b"like", b"rlike", b"regexp", b"glob", b"is", b"in", b"between", b"sounds", b"mod", b"div", b"collate", b"escape",
];

/// Bits of [`sql_words`].
const KW: u8 = 1;
const OW: u8 = 2;

/// For each first and last letter, the lengths (as bits) of the keyword and operator words
/// starting and ending with them: most words of prose are rejected on this alone, before any
/// comparison.
static WORD_CANDIDATES: [[u16; 26]; 26] = {
    let mut t = [[0u16; 26]; 26];
    let mut l = 0;
    while l < 2 {
        let list = if l == 0 { KEYWORD_WORDS } else { OPERATOR_WORDS };
        let mut i = 0;
        while i < list.len() {
            let w = list[i];
            t[(w[0] - b'a') as usize][(w[w.len() - 1] - b'a') as usize] |= 1 << w.len();
            i += 1;
        }
        l += 1;
    }
    t
};

fn word_class(w: &[u8]) -> u8 {
    let mut buf = [0u8; 9];
    for (d, c) in buf.iter_mut().zip(w) {
        *d = c.to_ascii_lowercase();
    }
    // A `match` on the bytes compiles to a switch on length and a few compares; the lists above
    // stay the single source (a test checks this agrees with them).
    match &buf[..w.len().min(9)] {
        b"union" | b"intersect" | b"except" | b"minus" | b"and" | b"or" | b"xor" | b"where" | b"having" | b"by"
        | b"limit" | b"offset" | b"into" | b"select" | b"insert" | b"update" | b"delete" | b"drop" | b"create"
        | b"alter" | b"truncate" | b"exec" | b"execute" | b"declare" | b"shutdown" | b"waitfor" | b"grant"
        | b"revoke" | b"rename" | b"handler" | b"merge" | b"backup" | b"dbcc" => KW,
        b"like" | b"rlike" | b"regexp" | b"glob" | b"is" | b"in" | b"between" | b"sounds" | b"mod" | b"div"
        | b"collate" | b"escape" => OW,
        _ => 0,
    }
}

/// ASCII letters, digits and `_`.
static WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || c == b'_';
        i += 1;
    }
    t
};

/// Length of the number the lexer reads at the start of the word `w` (`exp_only`: the word follows
/// `<digits>.`, so only an exponent can continue that number).
fn number_len(w: &[u8], exp_only: bool) -> usize {
    let digits = |from: usize| w[from.min(w.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
    let exponent = |at: usize| {
        if matches!(w.get(at), Some(b'e' | b'E')) && w.get(at + 1).is_some_and(u8::is_ascii_digit) {
            at + 1 + digits(at + 1)
        } else {
            at
        }
    };
    if exp_only {
        return exponent(0);
    }
    if w.len() > 2 && w[0] == b'0' && matches!(w[1], b'x' | b'X') {
        return 2 + w[2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
    }
    if w.len() > 2 && w[0] == b'0' && matches!(w[1], b'b' | b'B') && matches!(w[2], b'0' | b'1') {
        return 2 + w[2..].iter().take_while(|c| matches!(c, b'0' | b'1')).count();
    }
    exponent(digits(0))
}

/// Which of [`KEYWORD_WORDS`] ([`KW`]) and [`OPERATOR_WORDS`] ([`OW`]) appear as words (runs of
/// ASCII letters, digits and `_`). Leading digits are dropped: a number glued to a keyword
/// (`1union`) is two tokens to MySQL and to the lexer. One pass, no allocation.
fn sql_words(b: &[u8]) -> u8 {
    let word = |c: u8| WORD_BYTE[usize::from(c)];
    let mut out = 0;
    let mut i = 0;
    while i < b.len() {
        if !word(b[i]) {
            i += 1;
            continue;
        }
        let mut s = i;
        while i < b.len() && word(b[i]) {
            i += 1;
        }
        // Every keyword and operator word is letters only and ends its run (reading a number
        // first only moves the start): a run ending in a digit or `_` holds none.
        if !b[i - 1].is_ascii_alphabetic() {
            continue;
        }
        // The lexer reads a number first (`0x1f`, `0b1`, `1e5`, the `e5` of `1.e5`), then the
        // rest of the word on its own.
        let after_dot_number = s >= 2 && b[s - 1] == b'.' && b[s - 2].is_ascii_digit();
        if b[s].is_ascii_digit() || after_dot_number {
            s += number_len(&b[s..i], after_dot_number);
        }
        let len = i - s;
        if (2..=9).contains(&len) {
            let c = b[s] | 0x20;
            // The run ends in a letter (checked above).
            let e = b[i - 1] | 0x20;
            if c.is_ascii_lowercase() && WORD_CANDIDATES[usize::from(c - b'a')][usize::from(e - b'a')] & (1 << len) != 0
            {
                out |= word_class(&b[s..i]);
                if out == KW | OW {
                    break;
                }
            }
        }
    }
    out
}

/// Which SQL keyword ([`KW`]) and operator ([`OW`]) words appear as words in `b`: computed once
/// per value by a caller that both gates on it and then runs [`detect_with_words`].
pub(crate) fn words(b: &[u8]) -> u8 {
    sql_words(b)
}

/// Whether [`words`] found a SQL keyword.
pub(crate) fn has_keyword(words: u8) -> bool {
    words & KW != 0
}

/// Whether `s` is a SQL injection in any of the three contexts.
#[must_use]
pub fn detect(s: &str) -> Option<Fingerprint> {
    if !may_match(s) {
        return None;
    }
    detect_inner(s, true)
}

/// [`detect`] without the [`may_match`] prefilter, for callers that already checked it and hold
/// the value's [`words`] and [`features::of`].
pub(crate) fn detect_with_words(s: &str, words: u8, features: u64) -> Option<Fingerprint> {
    detect_words(s, Some((words, features)))
}

/// Operator characters that can join SQL tokens into a rule.
static OPERATOR_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let ops = b"=<>!+-*/%^|&~;(#@";
    let mut i = 0;
    while i < ops.len() {
        t[ops[i] as usize] = true;
        i += 1;
    }
    t
};

/// After the string a quote context opens, nothing SQL follows: no operator, separator, call,
/// comment, variable or keyword. Then no rule can fire in that context (the lone string token
/// matches nothing), and its tokenisation is skipped: `O'Brien` costs one context, not two.
///
/// `kw` / `ow` say whether the whole value has keyword / operator words at all: a tail starts
/// after a quote (a word boundary), so its words are some of the value's.
fn tail_is_inert_with(rest: &[u8], kw: bool, ow: bool) -> bool {
    !rest.iter().any(|c| OPERATOR_BYTE[*c as usize]) && ((!kw && !ow) || sql_words(rest) & (KW | OW) == 0)
}

/// A necessary condition for any rule in [`Context::None`]: without a quote context, every rule
/// needs a keyword (UNION, SELECT, AND, WHERE, LIMIT, ORDER BY, a statement verb…), a comment, a
/// system variable, a symbolic `&&` / `||`, a call of a SQL function, or a value that ends an
/// operand with `)` (a parenthesis breakout). Operators and `;` alone (`Deliver at 5; ring
/// twice!`) cannot complete one, nor can parentheses and `#` in prose (`Invoice #12 (paid)`), so
/// such values are not tokenised at all.
///
/// `kw` / `ow`: the value has keyword / operator words ([`sql_words`]).
///
/// `f`: the value's character classes ([`features::of`]).
fn bare_context_possible(b: &[u8], kw: bool, ow: bool, f: u64) -> bool {
    use features as F;
    if kw || f & (F::DASHDASH | F::SLASHSTAR | F::ATAT | F::LOGIC2) != 0 {
        return true;
    }
    let hash = f & F::HASH != 0;
    let quote_or_var = f & (F::QUOTE | F::AT) != 0;
    let (open, close_at) =
        if f & F::PAREN != 0 { (memchr::memchr(b'(', b).is_some(), memchr::memchr(b')', b)) } else { (false, None) };
    // A function token (`f`) needs a function name before a `(`, or an `xp_…` / `sp_…` name
    // (a function token even without a call; skipped bytes may separate it from the `(`).
    let xp = || {
        f & F::UNDERSCORE != 0
            && b.windows(3).any(|w| w[2] == b'_' && (w.eq_ignore_ascii_case(b"xp_") || w.eq_ignore_ascii_case(b"sp_")))
    };
    if open && (call_possible(b) || xp()) {
        return true;
    }
    // A parenthesis breakout (`1) …`) needs one operand chain, then the `)`.
    if let Some(p) = close_at
        && (ow || breakout_prefix_possible(&b[..p]))
    {
        return true;
    }
    // A trailing comment counts after a number (`1#`), or after SQL-ish tokens: strings, variables,
    // functions (calls are handled above; `xp_…` names are functions without a call).
    hash && (quote_or_var || numeric_first(b) || xp())
}

/// Whether some `(` follows (after blanks) a word the lexer would read as a SQL function: a
/// function token is always a whole run of word bytes that does not start like a number (a number
/// glued to a word splits off only a keyword, never a function name).
fn call_possible(b: &[u8]) -> bool {
    features::any_at(b, b'(', |p| {
        let mut end = p;
        while end > 0 && is_space(b[end - 1]) {
            end -= 1;
        }
        let mut st = end;
        while st > 0 && is_word(b[st - 1]) {
            st -= 1;
        }
        let run = &b[st..end];
        if run.is_empty() || run.len() > 40 || run[0].is_ascii_digit() || !run.is_ascii() {
            return false;
        }
        let mut buf = [0u8; 40];
        for (d, c) in buf.iter_mut().zip(run) {
            *d = c.to_ascii_lowercase();
        }
        let lw = std::str::from_utf8(&buf[..run.len()]).unwrap_or("");
        let last = lw.rsplit('.').next().unwrap_or(lw);
        let first = lw.split('.').next().unwrap_or(lw);
        function(last).is_some() || function(first).is_some()
    })
}

/// Whether the text before the first `)` can tokenise as `(`* operand (operator operand)*, the
/// start a parenthesis breakout needs. Two operands with only blanks (or bytes the lexer skips)
/// between them end that chain, as in prose: `Deliver after 6pm (I work 9-5)`. Strings, comments
/// and `not` (which the folding drops) make the answer `true`.
fn breakout_prefix_possible(prefix: &[u8]) -> bool {
    let mut operand_before = false;
    let mut joined = true;
    let mut i = 0;
    while i < prefix.len() {
        let c = prefix[i];
        if matches!(c, b'\'' | b'"' | b'`' | b'#' | b'@')
            || prefix[i..].starts_with(b"--")
            || prefix[i..].starts_with(b"/*")
        {
            return true;
        }
        if is_word(c) {
            let st = i;
            while i < prefix.len() && is_word(prefix[i]) {
                i += 1;
            }
            if prefix[st..i].eq_ignore_ascii_case(b"not") {
                return true;
            }
            if operand_before && !joined {
                return false;
            }
            operand_before = true;
            joined = false;
            continue;
        }
        if matches!(
            c,
            b'=' | b'<' | b'>' | b'!' | b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'|' | b'&' | b'~' | b':' | b','
        ) {
            joined = true;
        }
        i += 1;
    }
    true
}

/// Whether the first operand could be a number (`1`, `.5`, `-1`, `true`, `null`): the only bare
/// value that a trailing comment alone turns into a finding.
fn numeric_first(b: &[u8]) -> bool {
    let Some(st) = b.iter().position(|c| is_word(*c)) else { return false };
    let c = b[st];
    if c.is_ascii_digit() || c == b'.' {
        return true;
    }
    let end = b[st..].iter().position(|c| !is_word(*c)).map_or(b.len(), |p| st + p);
    let w = &b[st..end];
    [&b"true"[..], b"false", b"null", b"unknown", b"not"].iter().any(|k| w.eq_ignore_ascii_case(k))
}

fn detect_inner(s: &str, skip_inert: bool) -> Option<Fingerprint> {
    detect_words(s, skip_inert.then(|| (words(s.as_bytes()), features::of(s))))
}

/// Character classes holding every [`OPERATOR_BYTE`] (`!`, `~`, `^` share a class with `?`).
const OPERATOR_CLASSES: u64 = features::EQ
    | features::LT
    | features::GT
    | features::OTHER_OP
    | features::PLUS
    | features::MINUS
    | features::STAR
    | features::SLASH
    | features::PCT
    | features::PIPE
    | features::AMP
    | features::SEMI
    | features::PAREN
    | features::HASH
    | features::AT;

/// [`detect_inner`] with the value's [`words`] and [`features::of`] already known (`None`: skip
/// no context).
fn detect_words(s: &str, words: Option<(u8, u64)>) -> Option<Fingerprint> {
    let b = s.as_bytes();
    let skip_inert = words.is_some();
    // Word scans once for the whole value; each quote context's tail is a suffix of it.
    let (kw, ow, f) = words.map_or((true, true, u64::MAX), |(w, f)| (w & KW != 0, w & OW != 0, f));
    // An inert value is inert in every context: no operator byte and no SQL word.
    if skip_inert && !kw && !ow && f & OPERATOR_CLASSES == 0 {
        return None;
    }
    let mut best =
        if skip_inert && !bare_context_possible(b, kw, ow, f) { None } else { fingerprint_of(Context::None, s) };
    for (q, ctx) in [(b'\'', Context::SingleQuote), (b'"', Context::DoubleQuote)] {
        if best.as_ref().is_some_and(|f| f.rule_id != "sqli-breakout-concat" && f.rule_id != "sqli-number-comment") {
            break;
        }
        let Some(first) = memchr::memchr(q, b) else { continue };
        if skip_inert && tail_is_inert_with(&b[first + 1..], kw, ow) {
            continue;
        }
        if let Some(f) = fingerprint_of(ctx, s)
            && (best.is_none() || !matches!(f.rule_id, "sqli-breakout-concat" | "sqli-number-comment"))
        {
            best = Some(f);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The byte-at-a-time definition of [`sql_words`], without its shortcuts.
    fn sql_words_reference(b: &[u8]) -> u8 {
        let mut out = 0;
        let mut i = 0;
        while i < b.len() {
            if !WORD_BYTE[usize::from(b[i])] {
                i += 1;
                continue;
            }
            let mut s = i;
            while i < b.len() && WORD_BYTE[usize::from(b[i])] {
                i += 1;
            }
            let after_dot_number = s >= 2 && b[s - 1] == b'.' && b[s - 2].is_ascii_digit();
            if b[s].is_ascii_digit() || after_dot_number {
                s += number_len(&b[s..i], after_dot_number);
            }
            if (2..=9).contains(&(i - s)) {
                out |= word_class(&b[s..i]);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        #[test]
        fn sql_words_equals_reference(s in "\\PC{0,80}") {
            prop_assert_eq!(sql_words(s.as_bytes()), sql_words_reference(s.as_bytes()));
        }

        #[test]
        fn sql_words_equals_reference_sqlish(v in prop::collection::vec(prop::sample::select(vec![
            "union", "UNION", "or", "by", "1", "0x1", "0b1", "1e5", ".", "e5", "E5", "_", " ", "is", "in",
            "like", "between", "select", "a", "-", "'", "é", "dbcc", "execute", "9", "0", "x", "ab", "2024",
            "T10", "Z", "0xor", "1.e5or", "9or", "1union",
        ]), 0..24)) {
            let s = v.concat();
            prop_assert_eq!(sql_words(s.as_bytes()), sql_words_reference(s.as_bytes()));
        }

        /// Skipping inert quote contexts and impossible bare contexts never changes a verdict.
        #[test]
        fn inert_tail_skip_is_sound(v in prop::collection::vec(prop::sample::select(vec![
            "'", "\"", "`", " ", "a", "1", "or", "and", "union", "select", "--", "#", "/*", "(", ")", "=", ";", "@",
            "@@", "by", "order", "having", "into", "x", "O'Brien", "-", "+", "||", "&&", ",", "sleep", "*/", "\\",
            "like", "is", "in", "between", "div", "true", "null", "not", "collate", "table", "drop", "limit", ")",
            "values", "exec", "declare", "@@version", "@v", "1union", "0x7e", "<", ">", "!", "where", "xp_cmdshell",
            "version", "group", "offset", "intersect", "é", ".", "$", "`",
            "not", "true", "null", "6pm", "I work", "#4411", "xp_x", "sp_y", "ascii", "mod", "div", ":", "?", "[",
            "x.sleep", "pg_catalog.pg_sleep", "@", "?", "xp_", "sp_", "\\", "{", "0x1f", ".5", "9-5", "1e5", "0b1", "1.e5", "0x", "(I", "\n", "~", "^", "count", "left",
        ]), 0..16).prop_map(|v| v.concat())) {
            prop_assert_eq!(detect_inner(&v, true), detect_inner(&v, false));
        }
    }

    #[test]
    fn word_class_matches_the_lists() {
        for w in KEYWORD_WORDS {
            assert_eq!(word_class(w), KW, "{}", String::from_utf8_lossy(w));
            assert_eq!(word_class(&w.to_ascii_uppercase()), KW);
        }
        for w in OPERATOR_WORDS {
            assert_eq!(word_class(w), OW, "{}", String::from_utf8_lossy(w));
        }
        for w in [&b"from"[..], b"selects", b"o", b"an", b"unio"] {
            assert_eq!(word_class(w), 0);
        }
    }

    fn hit(s: &str) -> bool {
        detect(s)
            .is_some_and(|f| !matches!(f.rule_id, "sqli-breakout-concat" | "sqli-number-comment" | "sqli-statement"))
    }

    #[test]
    fn attacks() {
        for a in [
            "x' OR 'a'='a",
            "7 or 2>1",
            "abc\" or \"z\"=\"z",
            "bob'--",
            "bob')#",
            "12 UNION ALL SELECT pass FROM accounts",
            "0 UnIoN/**/sElEcT 9,8,7",
            "/*!12345UNION*/ /*!SELECT*/ 1",
            "5; DROP TABLE invoices--",
            "q'; exec master..xp_cmdshell 'whoami'--",
            "9 AND SLEEP(3)",
            "x' AND extractvalue(1,concat(0x7e,version()))-- ",
            "2) or (3=3",
            "z' having 1=1--",
            "77 order by 4--",
            "m' || pg_sleep(4)--",
            "@@hostname",
            "4-benchmark(9999,md5(1))",
            "1 and 2>1",
            "0<1 or 2>1",
            "5<10 and 1=1",
            "5 < 10 and 10 > 5--",
        ] {
            assert!(hit(a), "missed {a:?}: {:?} / {}", detect(a), tokens(a, Context::SingleQuote));
        }
    }

    #[test]
    fn benign() {
        for b in [
            "O'Brien",
            "Mary O'Neil-Smith",
            "union was a great select",
            "DO OR NOT DO",
            "rock 'n' roll",
            "I'd like 2 or 3 of them",
            "Tom and Jerry",
            "don't select from the top shelf",
            "It's 5 -- maybe 6",
            "price: $12.50 (incl. tax)",
            "order by tomorrow please",
            "select x from y where",
            "I'll update the ticket; select the best option",
            "Ticket #123: login fails",
            "she said \"hello\" and left",
            "1/26/11",
            "2024-05-01T10:00:00Z",
            "5 < 10 and 10 > 5",
            "we know that 3 <= 4 and 9 >= 8, obviously",
        ] {
            assert!(!hit(b), "false positive {b:?}: {:?}", detect(b));
        }
    }
}
