//! Benign JSON API bodies shared by the `scan` bench and the `throughput` example.

use std::fmt::Write as _;

const NAMES: &[&str] = &["Siobhan O'Brien", "José Ñúñez", "Li Wei", "Anne-Marie D'Arcy", "Conan O'Malley Jr."];
const NOTES: &[&str] = &[
    "Please leave the parcel at the back door; the dog is friendly!",
    "Invoice #4411 shows $1,299.00 instead of $1,199.00 - can you check? Thanks.",
    "Deliver after 6pm (I work 9-5). Call +353 87 123 4567 on arrival.",
    "Gift wrap please: it's for my mum's 60th :)",
    "See https://example.com/orders?id=881&tab=items for details.",
];

/// A realistic order record (~250 bytes).
pub(crate) fn record(i: usize) -> String {
    format!(
        r#"{{"id":"ord_{i:06}","customer":{{"name":"{}","email":"user{i}@example.com"}},"items":[{{"sku":"SKU-{}","qty":{},"price":"{}.99"}}],"note":"{}","created_at":"2024-05-{:02}T10:{:02}:00Z","paid":true}}"#,
        NAMES[i % NAMES.len()].replace('"', "\\\""),
        4400 + i,
        i % 4 + 1,
        10 + i % 90,
        NOTES[i % NOTES.len()],
        i % 28 + 1,
        i % 60,
    )
}

/// A JSON body of about `size` bytes: an object with an array of records.
pub(crate) fn body(size: usize) -> String {
    let mut s = String::from(r#"{"page":1,"orders":["#);
    let mut i = 0;
    while s.len() + 300 < size || i == 0 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&record(i));
        i += 1;
    }
    let _ = write!(s, r#"],"total":{i}}}"#);
    s
}
