//! The handlers. None of them checks who is calling: that is the gateway's job.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::data::{
    Address, Customer, ItemsError, Order, OrderItem, SEED_PASSWORD, Store, fake_password_hash, fake_session_token,
    order_total,
};
use crate::error::{ApiError, Id, JsonBody, QueryParams, ROUTER_FRAME};

/// Shared in-memory state. A std lock is enough: no handler holds it across an await.
#[derive(Debug, Clone)]
pub(crate) struct Db(Arc<RwLock<Store>>);

impl Db {
    pub(crate) fn seeded() -> Self {
        Db(Arc::new(RwLock::new(Store::seeded())))
    }

    // No handler panics while holding the lock, and a poisoned store is still consistent (every
    // mutation is a single insert or remove), so poisoning is ignored rather than propagated.
    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The longest `/slow` will sleep, whatever it is asked.
pub(crate) const SLOW_CAP_MS: u64 = 30_000;
const SLOW_DEFAULT_MS: u64 = 1_000;
const DEFAULT_PAGE_LIMIT: u64 = 20;

// ---- probes and benchmark targets ----

pub(crate) async fn ping() -> Response {
    // Pre-serialised: this is the benchmark's hot path.
    ([(CONTENT_TYPE, "application/json")], r#"{"ok":true}"#).into_response()
}

pub(crate) async fn health() -> Response {
    ([(CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#).into_response()
}

#[derive(Debug, Serialize)]
pub(crate) struct EchoReply {
    received_bytes: u64,
    content_type: Option<String>,
}

/// Counts the body frame by frame instead of buffering it, so any size is accepted cheaply.
pub(crate) async fn echo(headers: HeaderMap, body: Body) -> ApiResult<Json<EchoReply>> {
    let mut body = body;
    let mut received_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::new(StatusCode::BAD_REQUEST, "could not read request body")
                .detail(err.to_string())
                .trace("hyper::Error(Body)", &["crm::api::bench::echo (src/api/bench.rs:19)", ROUTER_FRAME])
        })?;
        if let Some(data) = frame.data_ref() {
            received_bytes += data.len() as u64;
        }
    }
    let content_type = headers.get(CONTENT_TYPE).map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    Ok(Json(EchoReply { received_bytes, content_type }))
}

// ---- login ----

#[derive(Debug, Deserialize)]
pub(crate) struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct LoginReply {
    token: String,
    customer_id: u64,
}

pub(crate) async fn login(State(db): State<Db>, JsonBody(req): JsonBody<LoginRequest>) -> ApiResult<Json<LoginReply>> {
    let store = db.read();
    // Distinct answers for "no such user" and "wrong password": user enumeration, on purpose.
    let customer = store
        .customer_by_email(&req.email)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no user with email {}", req.email)))?;
    if fake_password_hash(customer.id, &req.password) != customer.password_hash {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, format!("wrong password for {}", req.email)));
    }
    Ok(Json(LoginReply { token: fake_session_token(customer), customer_id: customer.id }))
}

// ---- customers ----

#[derive(Debug, Deserialize)]
pub(crate) struct PageParams {
    page: Option<u64>,
    limit: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CustomerPage {
    page: u64,
    limit: u64,
    total: u64,
    customers: Vec<Customer>,
}

pub(crate) async fn list_customers(
    State(db): State<Db>,
    QueryParams(params): QueryParams<PageParams>,
) -> ApiResult<Json<CustomerPage>> {
    let page = params.page.unwrap_or(1);
    // No upper bound on `limit`, on purpose: `?limit=1000000` dumps the table.
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if page == 0 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "page starts at 1")
            .trace(
                "crm::db::DbError::InvalidOffset: OFFSET must not be negative",
                &[
                    "crm::db::list_customers (src/db.rs:61)",
                    "crm::api::customers::index (src/api/customers.rs:22)",
                    ROUTER_FRAME,
                ],
            )
            .sql(format!("SELECT * FROM customers ORDER BY id LIMIT {limit} OFFSET -{limit}")));
    }
    let store = db.read();
    let skip = (page - 1).saturating_mul(limit);
    let customers = store
        .customers
        .values()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .cloned()
        .collect();
    Ok(Json(CustomerPage { page, limit, total: store.customers.len() as u64, customers }))
}

pub(crate) async fn show_customer(State(db): State<Db>, Id(id): Id) -> ApiResult<Json<Customer>> {
    db.read()
        .customers
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::customer_not_found(id, "crm::api::customers::show (src/api/customers.rs:58)"))
}

/// Every field is writable, internal ones included: mass assignment, on purpose.
#[derive(Debug, Deserialize)]
pub(crate) struct NewCustomer {
    name: String,
    email: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    address: Address,
    #[serde(default)]
    notes: String,
    password: Option<String>,
    internal_credit_score: Option<u32>,
    created_by_admin: Option<String>,
}

pub(crate) async fn create_customer(State(db): State<Db>, JsonBody(new): JsonBody<NewCustomer>) -> ApiResult<Response> {
    const FRAME: &str = "crm::api::customers::create (src/api/customers.rs:97)";
    check_name_and_email(&new.name, &new.email, FRAME)?;
    let mut store = db.write();
    check_email_free(&store, &new.email, None, FRAME)?;
    let id = store.next_customer_id();
    let customer = Customer {
        id,
        name: new.name,
        email: new.email,
        phone: new.phone,
        card_number: new.card_number,
        address: new.address,
        notes: new.notes,
        internal_credit_score: new.internal_credit_score.unwrap_or(650),
        password_hash: fake_password_hash(id, new.password.as_deref().unwrap_or(SEED_PASSWORD)),
        created_by_admin: new.created_by_admin.unwrap_or_else(|| "api".to_owned()),
    };
    let id = store.insert_customer(customer.clone());
    Ok(created(&format!("/customers/{id}"), &customer))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CustomerUpdate {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    card_number: Option<String>,
    address: Option<Address>,
    notes: Option<String>,
    password: Option<String>,
    internal_credit_score: Option<u32>,
    created_by_admin: Option<String>,
}

/// A partial update: fields left out keep their value; `address`, when given, is replaced whole.
pub(crate) async fn update_customer(
    State(db): State<Db>,
    Id(id): Id,
    JsonBody(update): JsonBody<CustomerUpdate>,
) -> ApiResult<Json<Customer>> {
    const FRAME: &str = "crm::api::customers::update (src/api/customers.rs:131)";
    let mut store = db.write();
    let current = store.customers.get(&id).ok_or_else(|| ApiError::customer_not_found(id, FRAME))?;
    let name = update.name.unwrap_or_else(|| current.name.clone());
    let email = update.email.unwrap_or_else(|| current.email.clone());
    check_name_and_email(&name, &email, FRAME)?;
    check_email_free(&store, &email, Some(id), FRAME)?;
    let Some(customer) = store.customers.get_mut(&id) else {
        return Err(ApiError::customer_not_found(id, FRAME));
    };
    customer.name = name;
    customer.email = email;
    if let Some(phone) = update.phone {
        customer.phone = phone;
    }
    if let Some(card_number) = update.card_number {
        customer.card_number = card_number;
    }
    if let Some(address) = update.address {
        customer.address = address;
    }
    if let Some(notes) = update.notes {
        customer.notes = notes;
    }
    if let Some(password) = update.password {
        customer.password_hash = fake_password_hash(id, &password);
    }
    if let Some(score) = update.internal_credit_score {
        customer.internal_credit_score = score;
    }
    if let Some(admin) = update.created_by_admin {
        customer.created_by_admin = admin;
    }
    Ok(Json(customer.clone()))
}

#[derive(Debug, Serialize)]
pub(crate) struct Deleted {
    deleted: bool,
    id: u64,
}

/// Deletes the customer only; their orders stay, like a table without a foreign key.
pub(crate) async fn delete_customer(State(db): State<Db>, Id(id): Id) -> ApiResult<Json<Deleted>> {
    match db.write().customers.remove(&id) {
        Some(_) => Ok(Json(Deleted { deleted: true, id })),
        None => Err(ApiError::customer_not_found(id, "crm::api::customers::destroy (src/api/customers.rs:176)")),
    }
}

fn check_name_and_email(name: &str, email: &str, frame: &str) -> ApiResult<()> {
    let problem = if name.trim().is_empty() {
        "name must not be empty"
    } else if !email.contains('@') {
        "email must contain '@'"
    } else {
        return Ok(());
    };
    Err(ApiError::new(StatusCode::BAD_REQUEST, problem).trace(
        &format!("crm::model::ValidationError: {problem}"),
        &["crm::model::Customer::validate (src/model.rs:23)", frame, ROUTER_FRAME],
    ))
}

fn check_email_free(store: &Store, email: &str, own_id: Option<u64>, frame: &str) -> ApiResult<()> {
    match store.customer_by_email(email) {
        Some(other) if Some(other.id) != own_id => {
            Err(ApiError::new(StatusCode::CONFLICT, format!("email {email} is already used by customer {}", other.id))
                .trace(
                    "crm::db::DbError::UniqueViolation: duplicate key value violates unique constraint \
             \"customers_email_key\"",
                    &["crm::db::save_customer (src/db.rs:118)", frame, ROUTER_FRAME],
                )
                .sql(format!(
                    "INSERT INTO customers (email, ...) VALUES ('{email}', ...) -- Key (email)=({email}) \
             already exists."
                )))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Export {
    count: u64,
    customers: Vec<Customer>,
}

/// The "admin-only" export. Nothing here checks for an admin: the gateway must.
pub(crate) async fn admin_export(State(db): State<Db>) -> Json<Export> {
    let store = db.read();
    Json(Export { count: store.customers.len() as u64, customers: store.customers.values().cloned().collect() })
}

// ---- orders ----

#[derive(Debug, Serialize)]
pub(crate) struct CustomerOrders {
    customer_id: u64,
    orders: Vec<Order>,
}

pub(crate) async fn customer_orders(State(db): State<Db>, Id(id): Id) -> ApiResult<Json<CustomerOrders>> {
    let store = db.read();
    if !store.customers.contains_key(&id) {
        return Err(ApiError::customer_not_found(id, "crm::api::orders::for_customer (src/api/orders.rs:17)"));
    }
    let orders = store.orders.values().filter(|order| order.customer_id == id).cloned().collect();
    Ok(Json(CustomerOrders { customer_id: id, orders }))
}

pub(crate) async fn show_order(State(db): State<Db>, Id(id): Id) -> ApiResult<Json<Order>> {
    db.read()
        .orders
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::order_not_found(id, "crm::api::orders::show (src/api/orders.rs:40)"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewOrder {
    customer_id: u64,
    items: Vec<OrderItem>,
}

pub(crate) async fn create_order(State(db): State<Db>, JsonBody(new): JsonBody<NewOrder>) -> ApiResult<Response> {
    const FRAME: &str = "crm::api::orders::create (src/api/orders.rs:66)";
    let total = order_total(&new.items).map_err(|err| {
        let problem = match err {
            ItemsError::Empty => "an order needs at least one item".to_owned(),
            ItemsError::ZeroQuantity { sku } => format!("item {sku} has qty 0"),
            ItemsError::Overflow => "order total overflows".to_owned(),
        };
        ApiError::new(StatusCode::BAD_REQUEST, problem.clone()).trace(
            &format!("crm::orders::OrderError: {problem}"),
            &["crm::orders::compute_total (src/orders.rs:12)", FRAME, ROUTER_FRAME],
        )
    })?;
    let mut store = db.write();
    if !store.customers.contains_key(&new.customer_id) {
        return Err(ApiError::customer_not_found(new.customer_id, FRAME));
    }
    let order = store.insert_order(new.customer_id, new.items, total, "placed");
    Ok(created(&format!("/orders/{}", order.id), &order))
}

fn created(location: &str, body: &impl Serialize) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

// ---- test helpers: documents, delays, statuses, header echo ----

pub(crate) async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/yaml")], crate::OPENAPI_YAML).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct SlowParams {
    ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Slept {
    slept_ms: u64,
}

/// The delay `/slow?ms=` actually sleeps: the request, capped at [`SLOW_CAP_MS`].
pub(crate) fn slow_delay(requested_ms: Option<u64>) -> Duration {
    Duration::from_millis(requested_ms.unwrap_or(SLOW_DEFAULT_MS).min(SLOW_CAP_MS))
}

pub(crate) async fn slow(QueryParams(params): QueryParams<SlowParams>) -> Json<Slept> {
    let delay = slow_delay(params.ms);
    tokio::time::sleep(delay).await;
    Json(Slept { slept_ms: delay.as_millis() as u64 })
}

pub(crate) async fn status(Id(code): Id) -> ApiResult<Response> {
    let status = u16::try_from(code)
        .ok()
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("status {code} is outside 200-599")).trace(
                "http::status::InvalidStatusCode",
                &["crm::api::debug::status (src/api/debug.rs:31)", ROUTER_FRAME],
            )
        })?;
    // These statuses must not carry a body.
    if matches!(status.as_u16(), 204 | 205 | 304) {
        return Ok(status.into_response());
    }
    Ok((status, Json(json!({ "status": status.as_u16(), "reason": status.canonical_reason() }))).into_response())
}

/// Request headers as one JSON object; repeated headers are joined with ", ".
pub(crate) async fn echo_headers(headers: HeaderMap) -> Json<Map<String, Value>> {
    let mut out = Map::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match out.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            _ => {
                out.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    Json(out)
}

// ---- fallbacks ----

pub(crate) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route for {method} {}", uri.path())).trace(
        "axum::routing::RouteNotFound",
        &["axum::routing::Router::call_with_state (axum-0.8/src/routing/mod.rs:712)"],
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} not allowed on {}", uri.path())).trace(
        "axum::routing::MethodNotAllowed",
        &["axum::routing::method_routing::MethodRouter::call_with_state (axum-0.8/src/routing/method_routing.rs:1087)"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_delay_is_capped() {
        assert_eq!(slow_delay(Some(5)), Duration::from_millis(5));
        assert_eq!(slow_delay(None), Duration::from_millis(SLOW_DEFAULT_MS));
        assert_eq!(slow_delay(Some(u64::MAX)), Duration::from_millis(SLOW_CAP_MS));
        assert_eq!(slow_delay(Some(30_001)), Duration::from_millis(30_000));
    }
}
