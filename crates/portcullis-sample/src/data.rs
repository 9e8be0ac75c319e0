//! The in-memory CRM: models, deterministic seed data and the store.
//!
//! Everything here is derived from customer ids with fixed arithmetic, so two stores built by
//! [`Store::seeded`] are equal, run after run and machine after machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many customers a fresh store holds.
pub const SEED_CUSTOMER_COUNT: u64 = 50;

/// The password of every seeded customer (and the default for customers created without one).
pub const SEED_PASSWORD: &str = "password123";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Address {
    #[serde(default)]
    pub(crate) street: String,
    #[serde(default)]
    pub(crate) city: String,
    #[serde(default)]
    pub(crate) postcode: String,
    #[serde(default)]
    pub(crate) country: String,
}

/// A customer exactly as the API returns it: internal fields included, on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Customer {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) phone: String,
    pub(crate) card_number: String,
    pub(crate) address: Address,
    pub(crate) notes: String,
    pub(crate) internal_credit_score: u32,
    pub(crate) password_hash: String,
    pub(crate) created_by_admin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OrderItem {
    pub(crate) sku: String,
    pub(crate) qty: u32,
    pub(crate) unit_price_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) customer_id: u64,
    pub(crate) items: Vec<OrderItem>,
    pub(crate) total_cents: u64,
    pub(crate) status: String,
    /// Copied from the customer when the order is placed: another over-shared PAN.
    pub(crate) payment_card_number: String,
}

/// Why an order's items were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemsError {
    Empty,
    ZeroQuantity { sku: String },
    Overflow,
}

/// Sum of `qty * unit_price_cents`, refusing empty lists, zero quantities and overflow.
pub(crate) fn order_total(items: &[OrderItem]) -> Result<u64, ItemsError> {
    if items.is_empty() {
        return Err(ItemsError::Empty);
    }
    let mut total: u64 = 0;
    for item in items {
        if item.qty == 0 {
            return Err(ItemsError::ZeroQuantity { sku: item.sku.clone() });
        }
        let line = item.unit_price_cents.checked_mul(u64::from(item.qty)).ok_or(ItemsError::Overflow)?;
        total = total.checked_add(line).ok_or(ItemsError::Overflow)?;
    }
    Ok(total)
}

/// The whole database. Ids are never reused, like a real auto-increment column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Store {
    pub(crate) customers: BTreeMap<u64, Customer>,
    pub(crate) orders: BTreeMap<u64, Order>,
    next_customer_id: u64,
    next_order_id: u64,
}

impl Store {
    /// The seeded store: [`SEED_CUSTOMER_COUNT`] customers and a few orders each.
    pub(crate) fn seeded() -> Self {
        let mut store =
            Store { customers: BTreeMap::new(), orders: BTreeMap::new(), next_customer_id: 1, next_order_id: 1 };
        for id in 1..=SEED_CUSTOMER_COUNT {
            let customer = seed_customer(id);
            store.customers.insert(id, customer);
            store.next_customer_id = id + 1;
        }
        for customer_id in 1..=SEED_CUSTOMER_COUNT {
            for k in 0..customer_id % 4 {
                let items = seed_items(customer_id, k);
                // Seed items are small constants: the total cannot overflow or be empty.
                let total = order_total(&items).unwrap_or(0);
                let status = SEED_ORDER_STATUSES[((customer_id + k) % 4) as usize];
                store.insert_order(customer_id, items, total, status);
            }
        }
        store
    }

    pub(crate) fn customer_by_email(&self, email: &str) -> Option<&Customer> {
        self.customers.values().find(|c| c.email.eq_ignore_ascii_case(email))
    }

    pub(crate) fn next_customer_id(&self) -> u64 {
        self.next_customer_id
    }

    /// Stores `customer` under the next id (overwriting `customer.id`) and returns that id.
    pub(crate) fn insert_customer(&mut self, mut customer: Customer) -> u64 {
        let id = self.next_customer_id;
        self.next_customer_id += 1;
        customer.id = id;
        self.customers.insert(id, customer);
        id
    }

    /// Stores a new order for `customer_id` (which must exist) and returns it.
    pub(crate) fn insert_order(
        &mut self,
        customer_id: u64,
        items: Vec<OrderItem>,
        total_cents: u64,
        status: &str,
    ) -> Order {
        let id = self.next_order_id;
        self.next_order_id += 1;
        let payment_card_number = self.customers.get(&customer_id).map(|c| c.card_number.clone()).unwrap_or_default();
        let order = Order { id, customer_id, items, total_cents, status: status.to_owned(), payment_card_number };
        self.orders.insert(id, order.clone());
        order
    }
}

const FIRST_NAMES: [&str; 10] = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy"];
const LAST_NAMES: [&str; 10] =
    ["Anderson", "Brown", "Clarke", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jones"];
const STREETS: [&str; 7] =
    ["Main Street", "High Street", "Station Road", "Church Lane", "Mill Road", "Park Avenue", "Harbour Way"];
/// (city, country, postcode prefix)
const CITIES: [(&str, &str, &str); 5] = [
    ("Springfield", "US", "627"),
    ("London", "GB", "SW1A "),
    ("Berlin", "DE", "10"),
    ("Lyon", "FR", "690"),
    ("Osaka", "JP", "530-"),
];
/// Notes a careless support agent would write: some carry more personal data, on purpose.
const NOTES: [&str; 6] = [
    "Prefers contact by email.",
    "VIP customer; approve refunds without review.",
    "Called about a chargeback. SSN on file: 078-05-1120.",
    "Asked to pay by bank transfer, IBAN DE89 3704 0044 0532 0130 00.",
    "",
    "Reset password over the phone after answering security questions.",
];
const SEED_ORDER_STATUSES: [&str; 4] = ["placed", "paid", "shipped", "delivered"];
const ADMINS: [&str; 3] = ["root", "admin.alice", "admin.bob"];
/// (sku, unit price in cents)
const CATALOG: [(&str, u64); 6] = [
    ("SKU-1001", 1999),
    ("SKU-1002", 4999),
    ("SKU-2001", 999),
    ("SKU-2002", 12900),
    ("SKU-3001", 250),
    ("SKU-3002", 79900),
];

fn seed_customer(id: u64) -> Customer {
    let i = (id - 1) as usize;
    // (i % 10, (i / 10 + i) % 10) is one-to-one over 0..100, so names and emails are unique.
    let first = FIRST_NAMES[i % 10];
    let last = LAST_NAMES[(i / 10 + i) % 10];
    let (city, country, postcode_prefix) = CITIES[i % CITIES.len()];
    Customer {
        id,
        name: format!("{first} {last}"),
        email: format!("{}.{}@example.com", first.to_ascii_lowercase(), last.to_ascii_lowercase()),
        // 555-0100 to 555-0199 are reserved for fiction.
        phone: format!("+1-555-01{:02}", id % 100),
        card_number: test_card_number(id),
        address: Address {
            street: format!("{} {}", 1 + (id * 7) % 200, STREETS[i % STREETS.len()]),
            city: city.to_owned(),
            postcode: format!("{postcode_prefix}{:02}", (id * 13) % 100),
            country: country.to_owned(),
        },
        notes: NOTES[i % NOTES.len()].to_owned(),
        internal_credit_score: 300 + ((id * 37) % 551) as u32,
        password_hash: fake_password_hash(id, SEED_PASSWORD),
        created_by_admin: ADMINS[i % ADMINS.len()].to_owned(),
    }
}

fn seed_items(customer_id: u64, k: u64) -> Vec<OrderItem> {
    (0..1 + (customer_id + k) % 3)
        .map(|j| {
            let (sku, price) = CATALOG[((customer_id * 3 + k * 5 + j) % 6) as usize];
            OrderItem { sku: sku.to_owned(), qty: 1 + ((customer_id + j) % 4) as u32, unit_price_cents: price }
        })
        .collect()
}

/// A 16-digit test PAN for customer `id` that passes Luhn: customer 1 gets 4111111111111111.
pub(crate) fn test_card_number(id: u64) -> String {
    let prefix = ["555555", "411111", "400000"][(id % 3) as usize];
    let body = format!("{prefix}{:09}", (111_111_111u64.wrapping_mul(id)) % 1_000_000_000);
    let check = luhn_check_digit(&body);
    format!("{body}{check}")
}

/// The digit that makes `digits` followed by it pass the Luhn check.
fn luhn_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { double_digit(d) } else { d })
        .sum();
    (10 - sum % 10) % 10
}

fn double_digit(d: u32) -> u32 {
    let d = d * 2;
    if d > 9 { d - 9 } else { d }
}

/// Whether `number` (digits only) passes the Luhn check.
pub fn luhn_valid(number: &str) -> bool {
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = number
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| if i % 2 == 1 { double_digit(d) } else { d })
        .sum();
    sum.is_multiple_of(10)
}

/// A bcrypt-shaped string derived from the id and password with FNV-1a and xorshift.
///
/// Not a real password hash, on purpose: it only has to look like one when the API leaks it, and
/// to let `/login` tell a right password from a wrong one.
pub(crate) fn fake_password_hash(id: u64, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = fnv1a(format!("{id}:{password}").as_bytes());
    let mut out = String::from("$2b$10$");
    for _ in 0..53 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push(char::from(ALPHABET[(state % 64) as usize]));
    }
    out
}

/// A session token that looks opaque but is a pure function of the customer: nothing checks it.
pub(crate) fn fake_session_token(customer: &Customer) -> String {
    let tag = fnv1a(format!("session:{}:{}", customer.id, customer.password_hash).as_bytes());
    format!("crm.{}.{tag:016x}", customer.id)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        state ^= u64::from(*byte);
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_deterministic() {
        assert_eq!(Store::seeded(), Store::seeded());
    }

    #[test]
    fn seed_has_expected_shape() {
        let store = Store::seeded();
        assert_eq!(store.customers.len() as u64, SEED_CUSTOMER_COUNT);
        assert_eq!(store.next_customer_id(), SEED_CUSTOMER_COUNT + 1);
        let first = &store.customers[&1];
        assert_eq!(first.name, "Alice Anderson");
        assert_eq!(first.email, "alice.anderson@example.com");
        assert_eq!(first.card_number, "4111111111111111");
        assert!(!store.orders.is_empty());
        for order in store.orders.values() {
            assert!(store.customers.contains_key(&order.customer_id));
            assert_eq!(Ok(order.total_cents), order_total(&order.items));
        }
    }

    #[test]
    fn seed_emails_are_unique() {
        let store = Store::seeded();
        let mut emails: Vec<_> = store.customers.values().map(|c| c.email.clone()).collect();
        emails.sort();
        emails.dedup();
        assert_eq!(emails.len() as u64, SEED_CUSTOMER_COUNT);
    }

    #[test]
    fn card_numbers_pass_luhn() {
        for id in 1..=1000 {
            let pan = test_card_number(id);
            assert_eq!(pan.len(), 16, "{pan}");
            assert!(luhn_valid(&pan), "{pan}");
        }
    }

    #[test]
    fn luhn_accepts_known_test_pans_and_rejects_typos() {
        for pan in ["4111111111111111", "5555555555554444", "378282246310005"] {
            assert!(luhn_valid(pan), "{pan}");
        }
        for pan in ["4111111111111112", "1234567812345678", "", "4111-1111"] {
            assert!(!luhn_valid(pan), "{pan}");
        }
    }

    #[test]
    fn password_hash_tells_passwords_apart() {
        let hash = fake_password_hash(1, SEED_PASSWORD);
        assert!(hash.starts_with("$2b$10$"));
        assert_eq!(hash.len(), 60);
        assert_eq!(hash, fake_password_hash(1, SEED_PASSWORD));
        assert_ne!(hash, fake_password_hash(1, "password124"));
        assert_ne!(hash, fake_password_hash(2, SEED_PASSWORD));
    }

    #[test]
    fn order_total_refuses_bad_items() {
        let item = |qty, unit_price_cents| OrderItem { sku: "S".into(), qty, unit_price_cents };
        assert_eq!(order_total(&[item(2, 150), item(1, 5)]), Ok(305));
        assert_eq!(order_total(&[]), Err(ItemsError::Empty));
        assert!(matches!(order_total(&[item(0, 1)]), Err(ItemsError::ZeroQuantity { .. })));
        assert_eq!(order_total(&[item(2, u64::MAX)]), Err(ItemsError::Overflow));
        assert_eq!(order_total(&[item(1, u64::MAX), item(1, 1)]), Err(ItemsError::Overflow));
    }
}
