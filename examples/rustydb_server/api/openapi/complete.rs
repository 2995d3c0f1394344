//! Completes the derived document from the route table, so what the request
//! pipeline answers before or around a handler is documented on every
//! operation by construction rather than by hand:
//!
//! - every route of [`ROUTES`] has its operation (a test checks both ways);
//! - guarded routes get the bearer security requirement, the optional
//!   `X-Session-Id` header, 401 (`WWW-Authenticate`), 403 where the route
//!   needs more than the readonly role, and 503 (`Retry-After`: shutting
//!   down, too many sessions, admission pool busy);
//! - every route gets 400 (URL or `Content-Length` that does not decode),
//!   413 (`--max-body-bytes`), 415 (a body that is not JSON) and 500 (a
//!   caught handler panic);
//! - every 4xx/5xx without a body of its own answers `application/problem+json`;
//! - operation ids are the route table's handler names (unique), and the
//!   resources a `POST` creates link to the operations that use them;
//! - limits that come from the configuration (`--txn-memory-limit`, the
//!   ballast cap) or from constants the handlers check (the webhook URL
//!   pattern) are written into the schemas of the bodies that carry them.
//!
//! The handlers' own statuses stay in their `utoipa::path` annotations.

use serde_json::{Map, Value, json};

use crate::server::api::auth::{Access, Role};
use crate::server::api::routes::{H, ROUTES};
use crate::server::state::App;

/// The `X-Session-Id` pattern ([`crate::server::memory::sessions::valid_name`]).
pub const SESSION_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

/// What the pipeline may answer on a route needing `access`: (status, why).
fn pipeline(access: Access, max_body: usize) -> Vec<(u16, String)> {
    let mut v = vec![
        (
            400,
            "the URL does not decode (percent-encoding, UTF-8), Content-Length is not a number, \
             or X-Session-Id is not 1 to 64 of A-Z a-z 0-9 . _ -"
                .to_string(),
        ),
        (
            413,
            format!("the body is larger than {max_body} bytes (--max-body-bytes)"),
        ),
        (
            415,
            "a body whose Content-Type is not application/json (or +json)".to_string(),
        ),
        (
            500,
            "the handler failed unexpectedly (the error is logged)".to_string(),
        ),
    ];
    if let Access::Role(need) = access {
        v.push((
            401,
            "no bearer token, a malformed Authorization header, or an unknown token".to_string(),
        ));
        if need > Role::Readonly {
            v.push((403, format!("the token's role is below {}", need.as_str())));
        }
        v.push((
            503,
            "the server is shutting down, too many sessions are active, or the admission pool \
             stayed busy (Retry-After says when to retry)"
                .to_string(),
        ));
    }
    v
}

fn header(description: &str) -> Value {
    json!({"description": description, "required": true, "schema": {"type": "string"}})
}

/// Completes `doc` (utoipa's rendering as JSON) for `app`.
pub fn complete(doc: &mut Value, app: &App) {
    let components = &mut doc["components"];
    components["schemas"]["Problem"] = problem_schema();
    config_limits(&mut components["schemas"], app);
    json_parameter(doc, "/graphql", "get", "variables");
    for route in ROUTES {
        for &(method, h, access) in route.methods {
            let Some(op) = doc["paths"]
                .get_mut(route.pattern)
                .and_then(|p| p.get_mut(method.to_ascii_lowercase()))
            else {
                continue; // the document test reports it
            };
            op["operationId"] = Value::String(operation_id(h));
            complete_operation(op, access, app.cfg.max_body_bytes);
            add_links(op, h);
        }
    }
}

/// `TxnBegin` → `txnBegin`.
pub fn operation_id(h: H) -> String {
    let n = format!("{h:?}");
    let mut c = n.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// A link's target: (handler, parameter, runtime expression).
type LinkTarget = (H, &'static str, &'static str);

/// What a created resource links to: (creating handler, status, targets).
const LINKS: &[(H, &str, &[LinkTarget])] = &[
    (
        H::TxnBegin,
        "201",
        &[
            (H::Txn, "id", "$response.body#/transaction_id"),
            (H::TxnCommit, "id", "$response.body#/transaction_id"),
            (H::TxnRollback, "id", "$response.body#/transaction_id"),
        ],
    ),
    (
        H::TableCreate,
        "201",
        &[
            (H::Table, "name", "$response.body#/table"),
            (H::TableDrop, "name", "$response.body#/table"),
        ],
    ),
    (
        H::CallbackAdd,
        "201",
        &[(H::CallbackRemove, "id", "$response.body#/id")],
    ),
    (
        H::TokenMint,
        "201",
        &[(H::TokenRevoke, "id", "$response.body#/token_id")],
    ),
    (
        H::MemLeakMark,
        "201",
        &[(H::MemLeaks, "mark", "$response.body#/mark_id")],
    ),
];

fn add_links(op: &mut Value, h: H) {
    for (from, status, targets) in LINKS {
        if *from != h {
            continue;
        }
        let links = &mut op["responses"][*status]["links"];
        for (to, param, expr) in *targets {
            links[operation_id(*to)] = json!({
                "operationId": operation_id(*to),
                "parameters": {*param: expr},
            });
        }
    }
}

fn complete_operation(op: &mut Value, access: Access, max_body: usize) {
    let guarded = access != Access::Open;
    if guarded {
        op["security"] = json!([{"bearer": []}]);
        let params = op
            .as_object_mut()
            .map(|o| o.entry("parameters").or_insert_with(|| json!([])));
        if let Some(Value::Array(params)) = params {
            params.push(json!({
                "name": "X-Session-Id",
                "in": "header",
                "required": false,
                "description": "The caller's session (default `default`): its memory context holds the session's transactions and queries",
                "schema": {"type": "string", "pattern": SESSION_ID_PATTERN},
            }));
        }
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for (status, why) in pipeline(access, max_body) {
        let r = responses
            .entry(status.to_string())
            .or_insert_with(|| json!({"description": ""}));
        let d = r["description"].as_str().unwrap_or("").trim().to_string();
        r["description"] = Value::String(if d.is_empty() {
            capitalise(&why)
        } else {
            format!("{d}; or {why}")
        });
    }
    for (status, r) in responses.iter_mut() {
        let code: u16 = status.parse().unwrap_or(0);
        if code < 400 {
            continue;
        }
        if r["description"].as_str().is_none_or(str::is_empty) {
            r["description"] = Value::String(default_description(code).into());
        }
        if r.get("content").is_none() {
            r["content"] = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
        }
        let headers = match code {
            401 | 403 => Some((
                "WWW-Authenticate",
                "The bearer challenge (RFC 6750); 403 names `insufficient_scope`",
            )),
            405 => Some(("Allow", "The methods the path allows")),
            503 if r["content"].get("application/problem+json").is_some() => {
                Some(("Retry-After", "Seconds to wait before retrying"))
            }
            _ => None,
        };
        if let Some((name, d)) = headers {
            r["headers"][name] = header(d);
        }
    }
}

/// Declares query parameter `name` of `path`/`method` as JSON text
/// (`content: application/json`), as the handler parses it.
fn json_parameter(doc: &mut Value, path: &str, method: &str, name: &str) {
    let Some(params) = doc["paths"]
        .get_mut(path)
        .and_then(|p| p.get_mut(method))
        .and_then(|o| o.get_mut("parameters"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for p in params.iter_mut().filter(|p| p["name"] == name) {
        if let Some(o) = p.as_object_mut()
            && let Some(schema) = o.remove("schema")
        {
            o.insert(
                "content".into(),
                json!({"application/json": {"schema": schema}}),
            );
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn default_description(code: u16) -> &'static str {
    match code {
        400 => "Invalid request",
        401 => "Authentication required",
        403 => "Insufficient role",
        404 => "Not found",
        405 => "Method not allowed",
        409 => "Conflicting state",
        413 => "Too large",
        415 => "Unsupported media type",
        501 => "Not implemented",
        503 => "Unavailable",
        _ => "Error",
    }
}

/// RFC 9457 problem details, as every error is answered.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details; extension members (`parameter`, `limit_bytes`, `transaction_id`, …) depend on the problem type",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "`urn:rustydb:problem:<class>`", "pattern": "^urn:rustydb:problem:[a-z0-9-]+$"},
            "title": {"type": "string", "description": "The same for every problem of the class"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "What happened here"},
            "instance": {"type": "string", "description": "The request path"},
        },
        "additionalProperties": true,
    })
}

/// The largest ballast `POST /api/v1/memory/ballast` accepts by configuration:
/// twice the memory budget, within `--max-ballast`. (What the system can hold
/// at the moment is checked when it is allocated: 503 `ballast-refused`.)
pub fn ballast_max(app: &App) -> u64 {
    app.mm
        .pressure()
        .budget()
        .max(1)
        .saturating_mul(2)
        .min(app.cfg.max_ballast.unwrap_or(u64::MAX))
}

fn config_limits(schemas: &mut Value, app: &App) {
    let set = |schemas: &mut Value, schema: &str, field: &str, key: &str, v: Value| {
        if let Some(p) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_object_mut)
        {
            p.insert(key.to_string(), v);
        }
    };
    set(
        schemas,
        "BallastRequest",
        "bytes",
        "maximum",
        json!(ballast_max(app)),
    );
    set(
        schemas,
        "BeginRequest",
        "memory_limit_bytes",
        "maximum",
        json!(app.cfg.txn_memory_limit),
    );
    use crate::server::observe::alerts::{WEBHOOK_URL_MAX, WEBHOOK_URL_PATTERN};
    set(
        schemas,
        "CallbackRequest",
        "url",
        "pattern",
        json!(WEBHOOK_URL_PATTERN),
    );
    set(
        schemas,
        "CallbackRequest",
        "url",
        "maxLength",
        json!(WEBHOOK_URL_MAX),
    );
}

/// Every (pattern, method) of the route table, for the document test.
pub fn route_operations() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for r in ROUTES {
        for &(m, _, _) in r.methods {
            v.push((r.pattern.to_string(), m.to_ascii_lowercase()));
        }
    }
    v
}

/// Every (path, method) of a document.
pub fn document_operations(doc: &Value) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (p, item) in paths {
            for m in item.as_object().map(Map::keys).into_iter().flatten() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&m.as_str())
                {
                    v.push((p.clone(), m.clone()));
                }
            }
        }
    }
    v
}
