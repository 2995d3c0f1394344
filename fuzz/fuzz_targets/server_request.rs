//! Arbitrary HTTP requests fed to the example server's handler without a
//! socket (`server::fuzz_request`: a process-wide app with fixed tokens and
//! the SQL engine `Unavailable`).
//!
//! Inputs are structured: a method (known or raw bytes), a route of the
//! server's own table (`routes::ROUTES`, placeholders filled with ids that
//! exist or junk) with an arbitrary suffix and query, an optional
//! Authorization header (one of `FUZZ_TOKENS` or junk), a content type, a few
//! other headers, and a body that is raw bytes, JSON built from arbitrary
//! values and the field names the server's request bodies use, `{"sql": ..}`,
//! a batch of statements, or a GraphQL document made of the schema's own names
//! (read by introspection once per process).
//!
//! Checks: no panic (a handler's panic would be caught by the server and
//! answered 500; libFuzzer's panic hook aborts first), and no 5xx except 501
//! (the SQL engine is unavailable) and 503 (admission control, memory
//! pressure).
#![no_main]
// The server's modules are shared by the example binary, its tests and this
// target; each uses a different part.
#![allow(dead_code, unused_imports)]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

#[path = "../../examples/rustydb_server/server.rs"]
mod server;

const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT",
];

/// Values for a `{placeholder}` segment: ids the server knows at start, ids it
/// hands out (`test_txn_N`, `sess_N`), and junk.
const SEGMENTS: [&str; 16] = [
    "default",
    "admin",
    "readonly",
    "readwrite",
    "test_txn_1",
    "test_txn_2",
    "1",
    "0",
    "-1",
    "18446744073709551616",
    "users",
    "%00",
    "..",
    "%2F",
    "a%20b",
    "ünïcødé",
];

/// Field names of the server's JSON request bodies (`rest/*.rs`, GraphQL).
const KEYS: [&str; 34] = [
    "sql",
    "transaction_id",
    "statements",
    "queries",
    "transaction",
    "query",
    "variables",
    "operationName",
    "role",
    "label",
    "isolation_level",
    "memory_limit_bytes",
    "columns",
    "if_not_exists",
    "name",
    "data_type",
    "nullable",
    "bytes",
    "level",
    "min_level",
    "pool_id",
    "min_connections",
    "max_connections",
    "connection_timeout_secs",
    "idle_timeout_secs",
    "url",
    "alias",
    "condition",
    "column",
    "op",
    "value",
    "and",
    "or",
    "not",
];

const SQL_WORDS: [&str; 40] = [
    "SELECT",
    "FROM",
    "WHERE",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "CREATE",
    "TABLE",
    "DROP",
    "IF",
    "EXISTS",
    "NOT",
    "NULL",
    "AND",
    "OR",
    "ORDER",
    "BY",
    "GROUP",
    "LIMIT",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "INTEGER",
    "TEXT",
    "users",
    "id",
    "name",
    "*",
    "(",
    ")",
    ",",
    ";",
    "=",
    "'x'",
    "1",
    "-9223372036854775808",
    "1e308",
];

#[derive(Arbitrary, Debug)]
enum MethodSel {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Segment {
    Known(u8),
    Number(u64),
    Text(String),
}

impl Segment {
    fn render(&self) -> String {
        match self {
            Segment::Known(i) => SEGMENTS[*i as usize % SEGMENTS.len()].to_string(),
            Segment::Number(n) => n.to_string(),
            Segment::Text(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Target {
    Route {
        route: u8,
        fill: Segment,
        trailing_slash: bool,
        suffix: Option<String>,
        query: Vec<(String, String)>,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Auth {
    None,
    Token(u8),
    BearerJunk(String),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum ContentType {
    None,
    Json,
    Text,
    GraphQl,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Key(u8),
    Arr(Vec<J>),
    Obj(Vec<(KeySel, J)>),
}

#[derive(Arbitrary, Debug)]
enum KeySel {
    Known(u8),
    Any(String),
}

impl KeySel {
    fn render(&self) -> String {
        match self {
            KeySel::Known(i) => KEYS[*i as usize % KEYS.len()].to_string(),
            KeySel::Any(s) => s.clone(),
        }
    }
}

impl J {
    fn to_value(&self, depth: usize) -> Value {
        if depth > 16 {
            return Value::Null;
        }
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Int(i) => json!(i),
            J::Uint(u) => json!(u),
            J::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            J::Str(s) => Value::String(s.clone()),
            J::Key(i) => Value::String(SEGMENTS[*i as usize % SEGMENTS.len()].to_string()),
            J::Arr(v) => Value::Array(v.iter().map(|j| j.to_value(depth + 1)).collect()),
            J::Obj(kv) => {
                let mut m = Map::new();
                for (k, v) in kv {
                    m.insert(k.render(), v.to_value(depth + 1));
                }
                Value::Object(m)
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Word {
    Known(u8),
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Text {
    Words(Vec<Word>),
    Any(String),
}

impl Text {
    fn render(&self, known: &[String]) -> String {
        match self {
            Text::Any(s) => s.clone(),
            Text::Words(ws) => {
                let mut out = String::new();
                for w in ws {
                    match w {
                        Word::Known(i) if !known.is_empty() => {
                            out.push_str(&known[*i as usize % known.len()])
                        }
                        Word::Known(_) => {}
                        Word::Any(s) => out.push_str(s),
                    }
                    out.push(' ');
                }
                out
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum BodySel {
    Empty,
    Raw(Vec<u8>),
    Json(J),
    Sql {
        sql: Text,
        txn: Option<Segment>,
    },
    Batch {
        statements: Vec<Text>,
        transaction: Option<bool>,
    },
    GraphQl {
        query: Text,
        variables: Option<J>,
        operation: Option<String>,
    },
    GraphQlBatch(Vec<Text>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: MethodSel,
    target: Target,
    auth: Auth,
    content_type: ContentType,
    session: Option<Segment>,
    headers: Vec<(String, Vec<u8>)>,
    body: BodySel,
}

/// Names in the GraphQL schema (types, fields, arguments, enum values) plus
/// the language's punctuation and keywords: the words GraphQL documents are
/// made of.
fn graphql_words() -> &'static [String] {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let mut words: Vec<String> = [
            "{", "}", "(", ")", ":", ",", "$", "!", "...", "@", "[", "]", "=", "\"x\"", "1",
            "-1", "1.5", "true", "null", "query", "mutation", "subscription", "fragment", "on",
            "__typename", "__schema", "__type", "@include(if: true)", "@skip(if: false)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let q = br#"{"query":"{ __schema { types { name fields { name args { name } } inputFields { name } enumValues { name } } } }"}"#;
        let auth = format!("Bearer {}", server::FUZZ_TOKENS[0].1);
        let r = server::fuzz_request(
            b"POST",
            b"/graphql",
            &[
                (b"authorization".to_vec(), auth.into_bytes()),
                (b"content-type".to_vec(), b"application/json".to_vec()),
            ],
            q,
        );
        assert_eq!(r.status, 200, "setup: introspection: {}", String::from_utf8_lossy(&r.body));
        let v: Value = serde_json::from_slice(&r.body).expect("setup: introspection JSON");
        fn names(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        match (k.as_str(), x) {
                            ("name", Value::String(s)) => out.push(s.clone()),
                            _ => names(x, out),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|x| names(x, out)),
                _ => {}
            }
        }
        names(&v, &mut words);
        words.sort();
        words.dedup();
        words
    })
}

fn sql_words() -> &'static [String] {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(|| SQL_WORDS.iter().map(|s| s.to_string()).collect())
}

fn render_target(t: &Target) -> Vec<u8> {
    match t {
        Target::Raw(b) => b.clone(),
        Target::Route {
            route,
            fill,
            trailing_slash,
            suffix,
            query,
        } => {
            let routes = server::api::routes::ROUTES;
            let pattern = routes[*route as usize % routes.len()].pattern;
            let seg = fill.render();
            let mut path = String::new();
            let mut rest = pattern;
            while let Some(open) = rest.find('{') {
                path.push_str(&rest[..open]);
                path.push_str(&seg);
                rest = rest[open..].find('}').map_or("", |c| &rest[open + c + 1..]);
            }
            path.push_str(rest);
            if *trailing_slash {
                path.push('/');
            }
            if let Some(s) = suffix {
                path.push_str(s);
            }
            for (i, (k, v)) in query.iter().take(8).enumerate() {
                path.push(if i == 0 { '?' } else { '&' });
                path.push_str(k);
                path.push('=');
                path.push_str(v);
            }
            path.into_bytes()
        }
    }
}

fn render_body(b: &BodySel) -> Vec<u8> {
    let v = match b {
        BodySel::Empty => return Vec::new(),
        BodySel::Raw(b) => return b.clone(),
        BodySel::Json(j) => j.to_value(0),
        BodySel::Sql { sql, txn } => {
            let mut m = Map::new();
            m.insert("sql".into(), Value::String(sql.render(sql_words())));
            if let Some(t) = txn {
                m.insert("transaction_id".into(), Value::String(t.render()));
            }
            Value::Object(m)
        }
        BodySel::Batch {
            statements,
            transaction,
        } => {
            let s: Vec<Value> = statements
                .iter()
                .take(120)
                .map(|t| Value::String(t.render(sql_words())))
                .collect();
            let mut m = Map::new();
            m.insert("statements".into(), Value::Array(s));
            if let Some(t) = transaction {
                m.insert("transaction".into(), Value::Bool(*t));
            }
            Value::Object(m)
        }
        BodySel::GraphQl {
            query,
            variables,
            operation,
        } => {
            let mut m = Map::new();
            m.insert("query".into(), Value::String(query.render(graphql_words())));
            if let Some(v) = variables {
                m.insert("variables".into(), v.to_value(0));
            }
            if let Some(o) = operation {
                m.insert("operationName".into(), Value::String(o.clone()));
            }
            Value::Object(m)
        }
        BodySel::GraphQlBatch(qs) => Value::Array(
            qs.iter()
                .take(8)
                .map(|q| json!({ "query": q.render(graphql_words()) }))
                .collect(),
        ),
    };
    serde_json::to_vec(&v).expect("a JSON value serialises")
}

fuzz_target!(|input: Input| {
    // Warm up once (and fail setup loudly rather than in the first input).
    graphql_words();
    let method = match &input.method {
        MethodSel::Known(i) => METHODS[*i as usize % METHODS.len()].as_bytes().to_vec(),
        MethodSel::Raw(b) => b.clone(),
    };
    let target = render_target(&input.target);
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    match &input.auth {
        Auth::None => {}
        Auth::Token(i) => {
            let t = server::FUZZ_TOKENS[*i as usize % server::FUZZ_TOKENS.len()].1;
            headers.push((
                b"authorization".to_vec(),
                format!("Bearer {t}").into_bytes(),
            ));
        }
        Auth::BearerJunk(s) => headers.push((
            b"authorization".to_vec(),
            format!("Bearer {s}").into_bytes(),
        )),
        Auth::Raw(b) => headers.push((b"authorization".to_vec(), b.clone())),
    }
    let ct: Option<&[u8]> = match &input.content_type {
        ContentType::None => None,
        ContentType::Json => Some(b"application/json"),
        ContentType::Text => Some(b"text/plain; charset=utf-8"),
        ContentType::GraphQl => Some(b"application/graphql"),
        ContentType::Raw(s) => Some(s.as_bytes()),
    };
    if let Some(ct) = ct {
        headers.push((b"content-type".to_vec(), ct.to_vec()));
    }
    if let Some(s) = &input.session {
        headers.push((b"x-session-id".to_vec(), s.render().into_bytes()));
    }
    for (k, v) in input.headers.iter().take(4) {
        headers.push((k.as_bytes().to_vec(), v.clone()));
    }
    let body = render_body(&input.body);
    let r = server::fuzz_request(&method, &target, &headers, &body);
    assert!(
        r.status < 500 || r.status == 501 || r.status == 503,
        "{} {} -> {}: {}",
        String::from_utf8_lossy(&method),
        String::from_utf8_lossy(&target),
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    assert!((100..600).contains(&r.status), "status {}", r.status);
});
