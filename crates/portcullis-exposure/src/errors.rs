//! Safe errors: is an upstream 4xx/5xx body fit to be shown to a client?

use std::fmt;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::Regex;

/// Why an error body is unsafe to serve.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnsafeReason {
    /// A stack trace of the named runtime (`java`, `python`, `node`, `go`, `dotnet`, `php`, `ruby`).
    StackTrace(&'static str),
    /// A database error message (`mysql`, `postgresql`, `oracle`, `sqlserver`, `sqlite`).
    SqlError(&'static str),
    /// A server file-system path.
    FilePath,
    /// A framework debug page (`django`, `werkzeug`, `rails`, `laravel`, `aspnet`, `spring`).
    DebugPage(&'static str),
    /// A private IP address or an internal host name.
    InternalAddress,
}

impl fmt::Display for UnsafeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnsafeReason::StackTrace(r) => write!(f, "stack_trace:{r}"),
            UnsafeReason::SqlError(r) => write!(f, "sql_error:{r}"),
            UnsafeReason::FilePath => f.write_str("file_path"),
            UnsafeReason::DebugPage(r) => write!(f, "debug_page:{r}"),
            UnsafeReason::InternalAddress => f.write_str("internal_address"),
        }
    }
}

/// The verdict on an error body.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorBodyVerdict {
    /// Nothing internal found: the body may be served.
    Safe,
    /// Replace the body by a generic problem; log the reasons and [`error_body_digest`].
    Unsafe {
        /// Every reason found, sorted, without duplicates.
        reasons: Vec<UnsafeReason>,
    },
}

/// Only the first 256 KiB are looked at: an error page leaks near its top.
pub const ERROR_SCAN_LIMIT: usize = 256 * 1024;

const LITERALS: &[(&str, UnsafeReason)] = &[
    ("Exception in thread \"", UnsafeReason::StackTrace("java")),
    ("java.lang.", UnsafeReason::StackTrace("java")),
    ("Caused by: ", UnsafeReason::StackTrace("java")),
    ("at org.springframework.", UnsafeReason::StackTrace("java")),
    ("Traceback (most recent call last)", UnsafeReason::StackTrace("python")),
    ("at Object.<anonymous>", UnsafeReason::StackTrace("node")),
    ("(node:internal/", UnsafeReason::StackTrace("node")),
    ("at process.processTicksAndRejections", UnsafeReason::StackTrace("node")),
    ("goroutine 1 [running]", UnsafeReason::StackTrace("go")),
    ("panic: runtime error", UnsafeReason::StackTrace("go")),
    ("--- End of stack trace from previous location", UnsafeReason::StackTrace("dotnet")),
    ("System.NullReferenceException", UnsafeReason::StackTrace("dotnet")),
    ("   at System.", UnsafeReason::StackTrace("dotnet")),
    ("PHP Fatal error", UnsafeReason::StackTrace("php")),
    ("PHP Warning", UnsafeReason::StackTrace("php")),
    ("Stack trace:\n#0 ", UnsafeReason::StackTrace("php")),
    ("<b>Fatal error</b>:", UnsafeReason::StackTrace("php")),
    ("You have an error in your SQL syntax", UnsafeReason::SqlError("mysql")),
    ("mysql_fetch_", UnsafeReason::SqlError("mysql")),
    ("mysqli_", UnsafeReason::SqlError("mysql")),
    ("com.mysql.jdbc", UnsafeReason::SqlError("mysql")),
    ("ER_PARSE_ERROR", UnsafeReason::SqlError("mysql")),
    ("SQLSTATE[", UnsafeReason::SqlError("mysql")),
    ("PG::SyntaxError", UnsafeReason::SqlError("postgresql")),
    ("org.postgresql.util.PSQLException", UnsafeReason::SqlError("postgresql")),
    ("psycopg2.", UnsafeReason::SqlError("postgresql")),
    ("syntax error at or near", UnsafeReason::SqlError("postgresql")),
    ("unterminated quoted string at or near", UnsafeReason::SqlError("postgresql")),
    ("duplicate key value violates unique constraint", UnsafeReason::SqlError("postgresql")),
    ("quoted string not properly terminated", UnsafeReason::SqlError("oracle")),
    ("oracle.jdbc", UnsafeReason::SqlError("oracle")),
    ("Unclosed quotation mark after the character string", UnsafeReason::SqlError("sqlserver")),
    ("Microsoft OLE DB Provider for SQL Server", UnsafeReason::SqlError("sqlserver")),
    ("System.Data.SqlClient.SqlException", UnsafeReason::SqlError("sqlserver")),
    ("Incorrect syntax near", UnsafeReason::SqlError("sqlserver")),
    ("SQLITE_ERROR", UnsafeReason::SqlError("sqlite")),
    ("sqlite3.OperationalError", UnsafeReason::SqlError("sqlite")),
    ("SQLite/JDBCDriver", UnsafeReason::SqlError("sqlite")),
    ("Werkzeug Debugger", UnsafeReason::DebugPage("werkzeug")),
    ("The debugger caught an exception", UnsafeReason::DebugPage("werkzeug")),
    ("You're seeing this error because you have <code>DEBUG = True</code>", UnsafeReason::DebugPage("django")),
    ("Django Version:", UnsafeReason::DebugPage("django")),
    ("Action Controller: Exception caught", UnsafeReason::DebugPage("rails")),
    ("Whoops! There was an error", UnsafeReason::DebugPage("laravel")),
    ("Whoops\\Exception", UnsafeReason::DebugPage("laravel")),
    ("Illuminate\\", UnsafeReason::DebugPage("laravel")),
    ("Server Error in '/' Application", UnsafeReason::DebugPage("aspnet")),
    ("Whitelabel Error Page", UnsafeReason::DebugPage("spring")),
];

struct Patterns {
    literals: AhoCorasick,
    regexes: Vec<(Regex, UnsafeReason)>,
}

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| {
    let literals = AhoCorasick::new(LITERALS.iter().map(|(l, _)| l)).ok()?;
    let specs: &[(&str, UnsafeReason)] = &[
        (r"\n\s*at [\w$.<>]+\([\w$]+\.java:[0-9]+\)", UnsafeReason::StackTrace("java")),
        (r#"File "[^"\n]+", line [0-9]+, in "#, UnsafeReason::StackTrace("python")),
        (r"\n\s*at [^\n]*\(?/[^\n]*\.[cm]?[jt]s:[0-9]+:[0-9]+\)?", UnsafeReason::StackTrace("node")),
        (r"goroutine [0-9]+ \[[a-z ]+\]:|\n\t/[^\n]+\.go:[0-9]+", UnsafeReason::StackTrace("go")),
        (r" in [^\n]+\.cs:line [0-9]+", UnsafeReason::StackTrace("dotnet")),
        (r"\.php(?::| on line )[0-9]+|#[0-9]+ /[^\n]+\.php\([0-9]+\)", UnsafeReason::StackTrace("php")),
        (r"\.rb:[0-9]+:in `", UnsafeReason::StackTrace("ruby")),
        // Rust backtrace frames (`at crm::db::list (src/db.rs:61)`, std's `at ./src/main.rs:4:5`)
        // and panic messages.
        (r"\bat [\w<>]+(?:::[\w<>{}#]+)+ \([^\n()]*\.rs:[0-9]+(?::[0-9]+)?\)", UnsafeReason::StackTrace("rust")),
        (r"\n\s+at \.?/?[\w\-./]+\.rs:[0-9]+:[0-9]+|panicked at [^\n]+\.rs:[0-9]+", UnsafeReason::StackTrace("rust")),
        // A SQL statement echoed back: upper-case keywords only, to spare prose.
        (
            r"\b(?:SELECT\s[^\n]{0,200}?\sFROM\s+[\w.\x22`]+|INSERT\s+INTO\s+[\w.\x22`]+|UPDATE\s+[\w.\x22`]+\s+SET\s|DELETE\s+FROM\s+[\w.\x22`]+)",
            UnsafeReason::SqlError("statement"),
        ),
        (r"\bORA-[0-9]{5}\b", UnsafeReason::SqlError("oracle")),
        (r"\bERROR:\s+(?:relation|column) .+ does not exist", UnsafeReason::SqlError("postgresql")),
        (r#"near "[^"]*": syntax error"#, UnsafeReason::SqlError("sqlite")),
        (
            r"(?:^|[\s'\x22(=:])/(?:home|usr|var|opt|srv|etc|app|root|tmp|proc|Users)/[\w.\-]+/[\w.\-/]+",
            UnsafeReason::FilePath,
        ),
        (r"\b[A-Z]:\\(?:[\w .\-]+\\)+", UnsafeReason::FilePath),
        (
            r"\b(?:10\.(?:[0-9]{1,3}\.){2}[0-9]{1,3}|192\.168\.[0-9]{1,3}\.[0-9]{1,3}|172\.(?:1[6-9]|2[0-9]|3[01])\.[0-9]{1,3}\.[0-9]{1,3}|127\.(?:[0-9]{1,3}\.){2}[0-9]{1,3}|169\.254\.[0-9]{1,3}\.[0-9]{1,3})\b",
            UnsafeReason::InternalAddress,
        ),
        (
            r"\b[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9\-]+)*\.(?:internal|local|localdomain|corp|intranet|lan|cluster\.local)\b",
            UnsafeReason::InternalAddress,
        ),
    ];
    let regexes = specs.iter().map(|(r, why)| Regex::new(r).map(|re| (re, *why))).collect::<Result<_, _>>().ok()?;
    Some(Patterns { literals, regexes })
});

/// Decodes the JSON string escapes that hide paths and line breaks (`\/`, `\\`, `\n`, `\t`, `\"`).
fn json_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(c @ ('/' | '\\' | '"')) => out.push(c),
            Some(c) => {
                out.push('\\');
                out.push(c);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Classifies an upstream error body (its first [`ERROR_SCAN_LIMIT`] bytes, decoded lossily). JSON
/// bodies (`content_type` containing `json`) are also looked at with string escapes decoded.
/// Fails closed: if the patterns could not be built, every non-empty body is unsafe.
pub fn classify_error_body(content_type: Option<&str>, body: &[u8]) -> ErrorBodyVerdict {
    let head = &body[..body.len().min(ERROR_SCAN_LIMIT)];
    if head.is_empty() {
        return ErrorBodyVerdict::Safe;
    }
    let Some(p) = PATTERNS.as_ref() else {
        return ErrorBodyVerdict::Unsafe { reasons: vec![UnsafeReason::StackTrace("unknown")] };
    };
    let text = String::from_utf8_lossy(head);
    let is_json = content_type.is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    let decoded = if is_json && text.contains('\\') { Some(json_unescape(&text)) } else { None };
    let mut reasons = Vec::new();
    for t in std::iter::once(text.as_ref()).chain(decoded.as_deref()) {
        for m in p.literals.find_iter(t) {
            if let Some(&(_, why)) = LITERALS.get(m.pattern().as_usize()) {
                reasons.push(why);
            }
        }
        for (re, why) in &p.regexes {
            if !reasons.contains(why) && re.is_match(t) {
                reasons.push(*why);
            }
        }
    }
    reasons.sort_unstable();
    reasons.dedup();
    if reasons.is_empty() { ErrorBodyVerdict::Safe } else { ErrorBodyVerdict::Unsafe { reasons } }
}

/// SHA-256 of the whole body, lowercase hex: log this instead of the body.
pub fn error_body_digest(body: &[u8]) -> String {
    crate::mask::sha256_hex(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsafe_with(ct: Option<&str>, body: &str, want: UnsafeReason) {
        match classify_error_body(ct, body.as_bytes()) {
            ErrorBodyVerdict::Unsafe { reasons } => assert!(reasons.contains(&want), "{want} not in {reasons:?}"),
            ErrorBodyVerdict::Safe => panic!("{body:?} judged safe, wanted {want}"),
        }
    }

    #[test]
    fn rust_frames_and_echoed_sql_statements() {
        let body = r#"{"error":"page starts at 1","trace":"crm::db::DbError::InvalidOffset\n    at crm::db::list_customers (src/db.rs:61)\n    at axum::routing::route::Route::call (axum-0.8/src/routing/route.rs:140)","sql":"SELECT * FROM customers ORDER BY id LIMIT 20 OFFSET -20"}"#;
        unsafe_with(Some("application/json"), body, UnsafeReason::StackTrace("rust"));
        unsafe_with(Some("application/json"), body, UnsafeReason::SqlError("statement"));
        unsafe_with(None, "thread 'main' panicked at src/main.rs:4:5:\nboom", UnsafeReason::StackTrace("rust"));
        unsafe_with(
            None,
            "stack backtrace:\n   0: x\n             at ./src/lib.rs:10:3",
            UnsafeReason::StackTrace("rust"),
        );
        unsafe_with(None, "failed: INSERT INTO customers (email) VALUES ('a')", UnsafeReason::SqlError("statement"));
        unsafe_with(None, "UPDATE orders SET status = 'x' WHERE id = 1", UnsafeReason::SqlError("statement"));
        // Prose with the same words, a Rust-looking name without a frame: safe.
        for safe in [
            r#"{"error":"page starts at 1"}"#,
            r#"{"error":"select a plan from the list, then update your settings"}"#,
            r#"{"error":"Please SELECT an option"}"#,
            r#"{"error":"unknown field crm::Customer::nickname"}"#,
        ] {
            assert_eq!(
                classify_error_body(Some("application/json"), safe.as_bytes()),
                ErrorBodyVerdict::Safe,
                "{safe}"
            );
        }
    }

    #[test]
    fn stack_traces() {
        unsafe_with(
            None,
            "java.lang.NullPointerException\n\tat com.acme.Orders.get(Orders.java:42)\n",
            UnsafeReason::StackTrace("java"),
        );
        unsafe_with(
            None,
            "Traceback (most recent call last):\n  File \"/app/main.py\", line 3, in <module>\n",
            UnsafeReason::StackTrace("python"),
        );
        unsafe_with(
            None,
            "TypeError: x is undefined\n    at handler (/srv/api/index.js:10:5)\n",
            UnsafeReason::StackTrace("node"),
        );
        unsafe_with(None, "panic: boom\n\ngoroutine 7 [running]:\nmain.main()\n", UnsafeReason::StackTrace("go"));
        unsafe_with(None, "   at Acme.Api.Get() in C:\\src\\Api.cs:line 12", UnsafeReason::StackTrace("dotnet"));
        unsafe_with(None, "PHP Fatal error: Uncaught Error in /var/www/index.php:12", UnsafeReason::StackTrace("php"));
        unsafe_with(None, "app/models/user.rb:10:in `find'", UnsafeReason::StackTrace("ruby"));
    }

    #[test]
    fn sql_errors() {
        unsafe_with(None, "You have an error in your SQL syntax; check the manual", UnsafeReason::SqlError("mysql"));
        unsafe_with(None, "ERROR:  syntax error at or near \"FROM\"", UnsafeReason::SqlError("postgresql"));
        unsafe_with(None, "ORA-00933: SQL command not properly ended", UnsafeReason::SqlError("oracle"));
        unsafe_with(
            None,
            "Unclosed quotation mark after the character string ''.",
            UnsafeReason::SqlError("sqlserver"),
        );
        unsafe_with(None, "sqlite3.OperationalError: near \"WHERE\": syntax error", UnsafeReason::SqlError("sqlite"));
    }

    #[test]
    fn debug_pages_paths_and_addresses() {
        unsafe_with(Some("text/html"), "<title>Werkzeug Debugger</title>", UnsafeReason::DebugPage("werkzeug"));
        unsafe_with(Some("text/html"), "<h1>Whitelabel Error Page</h1>", UnsafeReason::DebugPage("spring"));
        unsafe_with(Some("text/html"), "Server Error in '/' Application.", UnsafeReason::DebugPage("aspnet"));
        unsafe_with(Some("text/html"), "Django Version: 4.2", UnsafeReason::DebugPage("django"));
        unsafe_with(
            Some("application/json"),
            r#"{"error":"open \/var\/lib\/app\/cfg.yml failed"}"#,
            UnsafeReason::FilePath,
        );
        unsafe_with(None, "upstream 10.0.3.17:8080 refused", UnsafeReason::InternalAddress);
        unsafe_with(None, "cannot reach db-1.prod.internal", UnsafeReason::InternalAddress);
    }

    #[test]
    fn ordinary_errors_are_safe() {
        for body in [
            r#"{"type":"about:blank","title":"Not Found","status":404}"#,
            r#"{"error":"invalid_request","error_description":"missing field 'name'"}"#,
            "Bad Request: the order 12345 is closed since 2024-01-15",
            "",
        ] {
            assert_eq!(
                classify_error_body(Some("application/json"), body.as_bytes()),
                ErrorBodyVerdict::Safe,
                "{body}"
            );
        }
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(error_body_digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
