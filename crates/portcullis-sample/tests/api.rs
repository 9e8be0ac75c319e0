//! The sample API over real sockets: every endpoint's happy path and error shapes, each response
//! held to its schema in `openapi.yaml`.

mod support;

use http::{Method, StatusCode};
use portcullis_sample::{OPENAPI_YAML, ROUTES, SEED_CUSTOMER_COUNT, SEED_PASSWORD, SERVER_HEADER, luhn_valid};
use serde_json::{Value, json};
use support::{Harness, Reply, assert_documented, check, openapi, resolve};

fn assert_trace(reply: &Reply) -> Value {
    let body = reply.json();
    assert!(body["error"].is_string(), "{body}");
    let trace = body["trace"].as_str().unwrap_or_default();
    assert!(trace.contains("\n    at crm::"), "no stack trace: {body}");
    body
}

#[tokio::test]
async fn ping_health_and_echo() {
    let h = Harness::start().await;
    let spec = openapi();

    let reply = h.get("/ping").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], br#"{"ok":true}"#);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_documented(&spec, &Method::GET, "/ping", &reply);

    let reply = h.get("/health").await;
    assert_eq!(reply.json(), json!({"status": "ok"}));
    assert_documented(&spec, &Method::GET, "/health", &reply);

    let reply = h.send(Method::POST, "/echo", &[("content-type", "text/plain")], b"hello").await;
    assert_eq!(reply.json(), json!({"received_bytes": 5, "content_type": "text/plain"}));
    assert_documented(&spec, &Method::POST, "/echo", &reply);

    // Larger than axum's 2 MiB default body limit: /echo streams, so it is still counted.
    let big = vec![b'x'; 3 * 1024 * 1024];
    let reply = h.send(Method::POST, "/echo", &[], &big).await;
    assert_eq!(reply.json(), json!({"received_bytes": big.len(), "content_type": null}));
    assert_documented(&spec, &Method::POST, "/echo", &reply);
}

#[tokio::test]
async fn every_response_carries_the_banner_headers() {
    let h = Harness::start().await;
    for reply in [
        h.get("/ping").await,
        h.get("/customers/999").await,
        h.get("/no/such/route").await,
        h.send(Method::DELETE, "/ping", &[], b"").await,
        h.send(Method::POST, "/login", &[], b"{").await,
    ] {
        assert_eq!(reply.header("server"), Some(SERVER_HEADER), "{reply:?}");
        assert_eq!(reply.header("x-powered-by"), Some("axum"), "{reply:?}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let h = Harness::start().await;
    let reply = h.get("/no/such/route").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"], "no route for GET /no/such/route");

    let reply = h.send(Method::DELETE, "/ping", &[], b"").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.json()["error"], "method DELETE not allowed on /ping");
}

#[tokio::test]
async fn login_tells_unknown_users_from_wrong_passwords() {
    let h = Harness::start().await;
    let spec = openapi();
    let login = |email: &str, password: &str| json!({"email": email, "password": password});

    let reply = h.send_json(Method::POST, "/login", &login("alice.anderson@example.com", SEED_PASSWORD)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["customer_id"], 1);
    assert!(!body["token"].as_str().unwrap().is_empty());
    assert_documented(&spec, &Method::POST, "/login", &reply);

    // The token is deterministic too.
    let again = h.send_json(Method::POST, "/login", &login("alice.anderson@example.com", SEED_PASSWORD)).await;
    assert_eq!(again.json()["token"], body["token"]);

    let reply = h.send_json(Method::POST, "/login", &login("nobody@example.com", SEED_PASSWORD)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json(), json!({"error": "no user with email nobody@example.com"}));
    assert_documented(&spec, &Method::POST, "/login", &reply);

    let reply = h.send_json(Method::POST, "/login", &login("alice.anderson@example.com", "hunter2")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json(), json!({"error": "wrong password for alice.anderson@example.com"}));
    assert_documented(&spec, &Method::POST, "/login", &reply);

    let reply = h.send(Method::POST, "/login", &[("content-type", "application/json")], b"{\"email\":").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let body = assert_trace(&reply);
    assert!(body["trace"].as_str().unwrap().contains("serde_json"));
    assert_documented(&spec, &Method::POST, "/login", &reply);

    // Well-formed JSON of the wrong shape is a 400 too.
    let reply = h.send_json(Method::POST, "/login", &json!({"email": "a@b"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["detail"].as_str().unwrap().contains("password"));
}

#[tokio::test]
async fn customers_are_paged_without_a_limit_cap() {
    let h = Harness::start().await;
    let spec = openapi();

    let reply = h.get("/customers").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_documented(&spec, &Method::GET, "/customers", &reply);
    let body = reply.json();
    assert_eq!(body["page"], 1);
    assert_eq!(body["limit"], 20);
    assert_eq!(body["total"], SEED_CUSTOMER_COUNT);
    let customers = body["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 20);
    assert_eq!(customers[0]["id"], 1);

    let body = h.get("/customers?page=3&limit=20").await.json();
    let ids: Vec<_> = body["customers"].as_array().unwrap().iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (41..=50).collect::<Vec<_>>());

    let body = h.get("/customers?limit=1000000").await.json();
    assert_eq!(body["customers"].as_array().unwrap().len() as u64, SEED_CUSTOMER_COUNT);
    let body = h.get("/customers?page=99").await.json();
    assert!(body["customers"].as_array().unwrap().is_empty());

    for bad in ["/customers?limit=abc", "/customers?page=-1", "/customers?page=0"] {
        let reply = h.get(bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_trace(&reply);
        assert_documented(&spec, &Method::GET, "/customers", &reply);
    }
}

#[tokio::test]
async fn customers_over_share_internal_fields() {
    let h = Harness::start().await;
    let spec = openapi();

    let reply = h.get("/customers/1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_documented(&spec, &Method::GET, "/customers/{id}", &reply);
    let alice = reply.json();
    assert_eq!(alice["name"], "Alice Anderson");
    assert_eq!(alice["card_number"], "4111111111111111");
    assert!(alice["password_hash"].as_str().unwrap().starts_with("$2b$"));
    assert!(alice["internal_credit_score"].is_u64());
    assert!(alice["created_by_admin"].is_string());
    assert!(alice["address"]["city"].is_string());

    let reply = h.get("/customers/999").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let body = assert_trace(&reply);
    assert!(body["trace"].as_str().unwrap().contains("at crm::db::find_customer (src/db.rs:42)"));
    assert!(body["sql"].as_str().unwrap().contains("FROM customers WHERE id = 999"));
    assert_documented(&spec, &Method::GET, "/customers/{id}", &reply);

    for bad in ["/customers/abc", "/customers/-1", "/customers/1.5"] {
        let reply = h.get(bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        let body = assert_trace(&reply);
        assert!(body["trace"].as_str().unwrap().contains("ParseIntError"));
        assert_documented(&spec, &Method::GET, "/customers/{id}", &reply);
    }
}

#[tokio::test]
async fn customers_can_be_created_updated_and_deleted_by_anyone() {
    let h = Harness::start().await;
    let spec = openapi();

    let new = json!({
        "name": "Mallory Moss",
        "email": "mallory@example.com",
        "card_number": "4000000000000002",
        "address": {"city": "Paris", "country": "FR"},
        "password": "s3cret",
        "internal_credit_score": 850,
    });
    let reply = h.send_json(Method::POST, "/customers", &new).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_documented(&spec, &Method::POST, "/customers", &reply);
    let created = reply.json();
    let id = created["id"].as_u64().unwrap();
    assert_eq!(id, SEED_CUSTOMER_COUNT + 1);
    assert_eq!(reply.header("location"), Some(&*format!("/customers/{id}")));
    // Mass assignment: the client chose an internal field.
    assert_eq!(created["internal_credit_score"], 850);
    assert_eq!(created["address"]["street"], "");
    assert_eq!(h.get(&format!("/customers/{id}")).await.json(), created);

    let reply =
        h.send_json(Method::POST, "/login", &json!({"email": "mallory@example.com", "password": "s3cret"})).await;
    assert_eq!(reply.json()["customer_id"], id);

    let reply =
        h.send_json(Method::POST, "/customers", &json!({"name": "Copy", "email": "ALICE.anderson@example.com"})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let body = assert_trace(&reply);
    assert!(body["error"].as_str().unwrap().contains("customer 1"));
    assert_documented(&spec, &Method::POST, "/customers", &reply);

    for bad in [
        json!({"name": "", "email": "x@example.com"}),
        json!({"name": "No At", "email": "example.com"}),
        json!({"email": "x@example.com"}),
        json!({"name": "Bad score", "email": "y@example.com", "internal_credit_score": -1}),
    ] {
        let reply = h.send_json(Method::POST, "/customers", &bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_trace(&reply);
        assert_documented(&spec, &Method::POST, "/customers", &reply);
    }

    // Any customer can be changed, internal fields included: no ownership check, on purpose.
    let reply = h
        .send_json(
            Method::PUT,
            "/customers/2",
            &json!({"notes": "changed", "created_by_admin": "mallory", "password": "pwned"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_documented(&spec, &Method::PUT, "/customers/{id}", &reply);
    let bob = reply.json();
    assert_eq!(bob["notes"], "changed");
    assert_eq!(bob["created_by_admin"], "mallory");
    assert_eq!(bob["name"], "Bob Brown");
    let reply = h.send_json(Method::POST, "/login", &json!({"email": bob["email"], "password": "pwned"})).await;
    assert_eq!(reply.status, StatusCode::OK);

    let reply = h.send_json(Method::PUT, "/customers/2", &json!({"email": "alice.anderson@example.com"})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let reply = h.send_json(Method::PUT, "/customers/999", &json!({"notes": "x"})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_trace(&reply);
    assert_documented(&spec, &Method::PUT, "/customers/{id}", &reply);
    let reply = h.send(Method::PUT, "/customers/2", &[], b"not json").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_trace(&reply);

    let reply = h.send(Method::DELETE, "/customers/3", &[], b"").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"deleted": true, "id": 3}));
    assert_documented(&spec, &Method::DELETE, "/customers/{id}", &reply);
    assert_eq!(h.get("/customers/3").await.status, StatusCode::NOT_FOUND);
    let reply = h.send(Method::DELETE, "/customers/3", &[], b"").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_documented(&spec, &Method::DELETE, "/customers/{id}", &reply);
    let reply = h.send(Method::DELETE, "/customers/x", &[], b"").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // Deleted ids are not reused.
    let reply = h.send_json(Method::POST, "/customers", &json!({"name": "Next", "email": "next@example.com"})).await;
    assert_eq!(reply.json()["id"], SEED_CUSTOMER_COUNT + 2);
    assert_eq!(h.get("/customers").await.json()["total"], SEED_CUSTOMER_COUNT + 1);
}

#[tokio::test]
async fn orders_are_listed_read_and_placed() {
    let h = Harness::start().await;
    let spec = openapi();

    let reply = h.get("/customers/3/orders").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_documented(&spec, &Method::GET, "/customers/{id}/orders", &reply);
    let body = reply.json();
    assert_eq!(body["customer_id"], 3);
    let orders = body["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 3);
    for order in orders {
        assert_eq!(order["customer_id"], 3);
        let total: u64 = order["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["qty"].as_u64().unwrap() * i["unit_price_cents"].as_u64().unwrap())
            .sum();
        assert_eq!(order["total_cents"], total);
    }
    let body = h.get("/customers/4/orders").await.json();
    assert!(body["orders"].as_array().unwrap().is_empty());

    let reply = h.get("/customers/999/orders").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_trace(&reply);
    assert_documented(&spec, &Method::GET, "/customers/{id}/orders", &reply);
    let reply = h.get("/customers/x/orders").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_documented(&spec, &Method::GET, "/customers/{id}/orders", &reply);

    let first = orders[0].clone();
    let path = format!("/orders/{}", first["id"]);
    let reply = h.get(&path).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_documented(&spec, &Method::GET, "/orders/{id}", &reply);
    assert_eq!(reply.json(), first);

    let reply = h.get("/orders/99999").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let body = assert_trace(&reply);
    assert!(body["sql"].as_str().unwrap().contains("FROM orders"));
    assert_documented(&spec, &Method::GET, "/orders/{id}", &reply);
    let reply = h.get("/orders/nope").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_documented(&spec, &Method::GET, "/orders/{id}", &reply);

    let new = json!({
        "customer_id": 1,
        "items": [
            {"sku": "SKU-1", "qty": 2, "unit_price_cents": 150},
            {"sku": "SKU-2", "qty": 1, "unit_price_cents": 5},
        ],
    });
    let reply = h.send_json(Method::POST, "/orders", &new).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_documented(&spec, &Method::POST, "/orders", &reply);
    let order = reply.json();
    assert_eq!(order["total_cents"], 305);
    assert_eq!(order["status"], "placed");
    assert_eq!(order["payment_card_number"], "4111111111111111");
    assert_eq!(reply.header("location"), Some(&*format!("/orders/{}", order["id"])));
    assert_eq!(h.get(&format!("/orders/{}", order["id"])).await.json(), order);

    let reply = h.send_json(Method::POST, "/orders", &json!({"customer_id": 999, "items": new["items"]})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_documented(&spec, &Method::POST, "/orders", &reply);

    for bad in [
        json!({"customer_id": 1, "items": []}),
        json!({"customer_id": 1, "items": [{"sku": "S", "qty": 0, "unit_price_cents": 1}]}),
        json!({"customer_id": 1, "items": [{"sku": "S", "qty": 2, "unit_price_cents": u64::MAX}]}),
        json!({"customer_id": 1}),
    ] {
        let reply = h.send_json(Method::POST, "/orders", &bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_trace(&reply);
        assert_documented(&spec, &Method::POST, "/orders", &reply);
    }
}

#[tokio::test]
async fn admin_export_dumps_every_customer_without_checking_anything() {
    let h = Harness::start().await;
    let reply = h.get("/admin/export").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_documented(&openapi(), &Method::GET, "/admin/export", &reply);
    let body = reply.json();
    assert_eq!(body["count"], SEED_CUSTOMER_COUNT);
    let customers = body["customers"].as_array().unwrap();
    assert_eq!(customers.len() as u64, SEED_CUSTOMER_COUNT);
    for customer in customers {
        assert!(customer["password_hash"].is_string());
        assert!(customer["internal_credit_score"].is_u64());
    }
}

#[tokio::test]
async fn seed_data_is_deterministic_and_cards_pass_luhn() {
    let a = Harness::start().await;
    let b = Harness::start().await;
    let first = a.get("/admin/export").await;
    let second = b.get("/admin/export").await;
    assert_eq!(first.body, second.body);
    let orders_a = a.get("/customers/7/orders").await;
    let orders_b = b.get("/customers/7/orders").await;
    assert_eq!(orders_a.body, orders_b.body);

    let body = first.json();
    let mut emails = Vec::new();
    for customer in body["customers"].as_array().unwrap() {
        let pan = customer["card_number"].as_str().unwrap();
        assert_eq!(pan.len(), 16, "{pan}");
        assert!(luhn_valid(pan), "{pan} fails Luhn");
        let hash = customer["password_hash"].as_str().unwrap();
        assert_eq!(hash.len(), 60);
        emails.push(customer["email"].as_str().unwrap().to_owned());
    }
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len() as u64, SEED_CUSTOMER_COUNT);
}

#[tokio::test]
async fn every_seeded_customer_logs_in_with_the_seed_password() {
    let h = Harness::start().await;
    let body = h.get("/admin/export").await.json();
    for customer in body["customers"].as_array().unwrap() {
        let reply =
            h.send_json(Method::POST, "/login", &json!({"email": customer["email"], "password": SEED_PASSWORD})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", customer["email"]);
        assert_eq!(reply.json()["customer_id"], customer["id"]);
    }
}

#[tokio::test]
async fn openapi_document_is_served_as_yaml() {
    let h = Harness::start().await;
    let reply = h.get("/openapi.yaml").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/yaml"));
    assert_eq!(&reply.body[..], OPENAPI_YAML.as_bytes());
    assert_documented(&openapi(), &Method::GET, "/openapi.yaml", &reply);
}

#[tokio::test]
async fn slow_status_and_headers_helpers() {
    let h = Harness::start().await;
    let spec = openapi();

    let reply = h.get("/slow?ms=1").await;
    assert_eq!(reply.json(), json!({"slept_ms": 1}));
    assert_documented(&spec, &Method::GET, "/slow", &reply);
    let reply = h.get("/slow?ms=soon").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_trace(&reply);
    assert_documented(&spec, &Method::GET, "/slow", &reply);

    for code in [200u16, 418, 429, 500, 503, 599] {
        let reply = h.get(&format!("/status/{code}")).await;
        assert_eq!(reply.status.as_u16(), code);
        assert_eq!(reply.json()["status"], code);
        assert_documented(&spec, &Method::GET, "/status/{code}", &reply);
    }
    let reply = h.get("/status/418").await;
    assert_eq!(reply.json()["reason"], "I'm a teapot");
    let reply = h.get("/status/204").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    for bad in ["/status/100", "/status/600", "/status/99999999999", "/status/abc"] {
        let reply = h.get(bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_trace(&reply);
        assert_documented(&spec, &Method::GET, "/status/{code}", &reply);
    }

    let reply = h
        .send(Method::GET, "/headers", &[("x-test", "one"), ("x-test", "two"), ("authorization", "Bearer abc")], b"")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_documented(&spec, &Method::GET, "/headers", &reply);
    let body = reply.json();
    assert_eq!(body["x-test"], "one, two");
    assert_eq!(body["authorization"], "Bearer abc");
    assert_eq!(body["host"], h.api.addr().to_string());
}

#[tokio::test]
async fn stop_closes_the_listener() {
    let h = Harness::start().await;
    let addr = h.api.addr();
    assert_eq!(h.get("/ping").await.status, StatusCode::OK);
    let Harness { api, .. } = h;
    api.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// A concrete path for a route template, and a body its handler accepts.
fn example_request(method: &str, template: &str) -> (String, Value) {
    // DELETE takes customer 2 so that the routes after it still find customer 1.
    let id = if method == "DELETE" { "2" } else { "1" };
    let path = template.replace("{id}", id).replace("{code}", "200");
    let body = match (method, template) {
        ("POST", "/login") => {
            json!({"email": "alice.anderson@example.com", "password": SEED_PASSWORD})
        }
        ("POST", "/customers") => json!({"name": "N", "email": "n@example.com"}),
        ("PUT", _) => json!({"notes": "n"}),
        ("POST", "/orders") => {
            json!({"customer_id": 1, "items": [{"sku": "S", "qty": 1, "unit_price_cents": 1}]})
        }
        _ => Value::Null,
    };
    (path, body)
}

#[tokio::test]
async fn router_serves_every_listed_route_successfully() {
    let h = Harness::start().await;
    let spec = openapi();
    for (method, template) in ROUTES {
        let (path, body) = example_request(method, template);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let reply = h.send_json(method.clone(), &path, &body).await;
        assert!(reply.status.is_success(), "{method} {path}: {} {:?}", reply.status, reply.body);
        assert_documented(&spec, &method, template, &reply);
    }
}

#[test]
fn openapi_is_3_1_and_lists_exactly_the_routes() {
    let spec = openapi();
    assert_eq!(spec["openapi"], "3.1.0");

    let mut documented = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for key in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&key.as_str()) {
                documented.push((key.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut routed: Vec<_> = ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    routed.sort();
    assert_eq!(documented, routed);
}

#[test]
fn openapi_refs_resolve_and_schemas_exist() {
    fn walk(spec: &Value, node: &Value, refs: &mut usize) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    resolve(spec, reference);
                    *refs += 1;
                }
                map.values().for_each(|v| walk(spec, v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(spec, v, refs)),
            _ => {}
        }
    }
    let spec = openapi();
    let mut refs = 0;
    walk(&spec, &spec, &mut refs);
    assert!(refs > 20);
    for name in ["Customer", "Address", "Order", "OrderItem", "Error", "LoginRequest", "LoginResponse"] {
        assert!(spec["components"]["schemas"][name].is_object(), "{name} missing");
    }
    for internal in ["internal_credit_score", "password_hash", "created_by_admin"] {
        let description =
            spec["components"]["schemas"]["Customer"]["properties"][internal]["description"].as_str().unwrap();
        assert!(description.starts_with("internal, should not be exposed"), "{internal}");
    }
}

#[test]
fn openapi_declares_security_and_admin_scope() {
    let spec = openapi();
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["type"], "http");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["bearerAuth"]["bearerFormat"], "JWT");
    assert_eq!(schemes["apiKey"]["type"], "apiKey");
    assert_eq!(schemes["apiKey"]["in"], "header");
    assert_eq!(schemes["apiKey"]["name"], "X-API-Key");

    let security = spec["paths"]["/admin/export"]["get"]["security"].as_array().unwrap();
    assert!(!security.is_empty());
    for requirement in security {
        for (scheme, scopes) in requirement.as_object().unwrap() {
            assert!(schemes[scheme].is_object(), "unknown scheme {scheme}");
            assert_eq!(scopes, &json!(["admin"]));
        }
    }
}

#[test]
fn schema_checker_rejects_what_it_should() {
    // The checker above is only worth something if it can fail.
    let spec = openapi();
    let customer = json!({"$ref": "#/components/schemas/Customer"});
    assert!(check(&spec, &customer, &json!({"id": 1}), "$").is_err());
    let error = json!({"$ref": "#/components/schemas/Error"});
    assert!(check(&spec, &error, &json!({"error": "x"}), "$").is_ok());
    assert!(check(&spec, &error, &json!({"error": "x", "extra": 1}), "$").is_err());
    assert!(check(&spec, &error, &json!({"error": 1}), "$").is_err());
}
