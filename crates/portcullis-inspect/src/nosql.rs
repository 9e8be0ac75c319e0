//! NoSQL (MongoDB) injection: query operators where data was expected, and server-side
//! JavaScript (`$where` bodies, `db.collection.method(…)`, busy-wait loops).

use crate::re::lazy_re;

/// MongoDB query and aggregation operators an attacker uses to change a query's meaning.
pub const OPERATORS: &[&str] = &[
    "$ne",
    "$eq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$or",
    "$and",
    "$nor",
    "$not",
    "$where",
    "$regex",
    "$exists",
    "$expr",
    "$function",
    "$accumulator",
    "$elemMatch",
    "$size",
    "$type",
    "$all",
    "$mod",
    "$text",
    "$jsonSchema",
    "$lookup",
    "$merge",
    "$out",
    "$set",
    "$unset",
    "$rename",
    "$inc",
    "$push",
    "$comment",
];

/// Whether a JSON key or bracketed parameter name (`user[$ne]`) is a query operator.
#[must_use]
pub fn operator_key(key: &str) -> bool {
    // Every operator starts with `$`.
    if !key.contains('$') {
        return false;
    }
    let k = key.trim();
    OPERATORS.iter().any(|o| o.eq_ignore_ascii_case(k))
        || key.split(['[', ']', '.']).any(|part| !part.is_empty() && part != key && operator_key(part))
}

lazy_re!(
    OP_TEXT,
    r#"(?i)(?:^|[\s{,'"\[(])\$(?:ne|eq|gt|gte|lt|lte|in|nin|or|and|nor|not|where|regex|exists|expr|function|elemmatch)["']?\s*:"#
);
lazy_re!(
    JS,
    r#"(?i)\bdb\.[\w$]+\.[\w$]+\s*\(|\bdb\.(?:getcollection|eval|runcommand|dropdatabase)\s*\(|(?:^|[;}\s])(?:do\s*\{|while\s*\(|var\s+[\w$]+\s*=\s*new\s+date\s*\(|this\.[\w$]+\s*(?:==|!=|\.match\s*\())|\bsleep\s*\(\s*\d+\s*\)\s*;|[;{]\s*return\s+(?:true|1|this)\b"#
);

/// NoSQL injection inside a string value.
#[must_use]
pub fn detect(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    if memchr::memchr(b'$', b).is_some() && OP_TEXT.is_match(s) {
        return Some("nosql-operator-text");
    }
    let js_possible = memchr::memchr2(b'{', b';', b).is_some()
        || b.windows(3).any(|w| w == b"db." || w.eq_ignore_ascii_case(b"whi") || w == b"is.");
    if js_possible && JS.is_match(s) {
        return Some("nosql-js");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(OP_TEXT.compiled() && JS.compiled());
    }

    #[test]
    fn attacks() {
        assert!(operator_key("$gt"));
        assert!(operator_key("password[$ne]"));
        for a in [
            "{\"$gt\": \"\"}",
            "x', $where: 'sleep(100)",
            "1; db.users.drop()",
            "'; while(true){}",
            "a'; return this.role == 'admin",
        ] {
            assert!(detect(a).is_some(), "missed {a:?}");
        }
    }

    #[test]
    fn benign() {
        assert!(!operator_key("price"));
        assert!(!operator_key("$amount_usd"));
        for b in ["costs $5 or less", "db.example.com", "while you wait", "do it { later }", "$ne is a word?"] {
            assert!(detect(b).is_none(), "false positive {b:?}");
        }
    }
}
