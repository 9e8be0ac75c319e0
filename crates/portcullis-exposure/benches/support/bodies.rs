//! JSON bodies shared by the `scan` bench and the `scan_cpu` example: a list of customer records,
//! each with an e-mail address and a phone number, some with a card number, an SSN, a password
//! hash or an API token, among ids, UUIDs, timestamps, prices and addresses; and a list of
//! products with nothing sensitive in it.

use std::fmt::Write as _;

/// One customer record; every 10th has a card, every 25th an SSN, every 50th a bcrypt hash.
pub(crate) fn record(out: &mut String, i: usize) {
    let card = if i.is_multiple_of(10) { r#","card":"4242 4242 4242 4242""# } else { "" };
    let ssn = if i.is_multiple_of(25) { r#","ssn_note":"SSN 536-22-6789""# } else { "" };
    let hash = if i.is_multiple_of(50) {
        r#","pw":"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW""#
    } else {
        ""
    };
    let _ = write!(
        out,
        r#"{{"id":{id},"uuid":"7f9c2ba4-e88f-11ee-a506-{id:012x}","name":"Customer {id}","email":"customer{id}@example.com","phone":"+1 415 555 {ph:04}","address":{{"street":"{id} Market Street","city":"San Francisco","zip":"94103","country":"US"}},"created_at":"2024-01-15T10:30:00Z","updated_at":"2024-06-01T08:00:00.123Z","plan":"pro","balance":1299.50,"orders":[{id}001,{id}002,{id}003],"tags":["vip","newsletter"],"notes":"Prefers contact by e-mail; order #{id}77 shipped"{card}{ssn}{hash}}}"#,
        id = i,
        ph = i % 10000,
    );
}

/// `{"customers":[…],"count":N,"next_cursor":"…"}` of at least `target` bytes.
pub(crate) fn body(target: usize) -> String {
    let mut out = String::from(r#"{"customers":["#);
    let mut i = 0;
    while out.len() < target {
        if i > 0 {
            out.push(',');
        }
        record(&mut out, i + 1);
        i += 1;
    }
    let _ = write!(out, r#"],"count":{i},"next_cursor":"c_{i}"}}"#);
    out
}

/// A list of product records (ids, SKUs, prices, timestamps) of at least `target` bytes.
pub(crate) fn clean_body(target: usize) -> String {
    let mut out = String::from("[");
    let mut i = 0;
    while out.len() < target {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"id":{i},"sku":"SKU-{i:06}","title":"Widget {i}","price":19.99,"stock":{s},"created_at":"2024-01-15T10:30:00Z","tags":["a","b"]}}"#,
            s = i % 97
        );
        i += 1;
    }
    out.push(']');
    out
}
