//! `GET` and `POST /graphql`: requests typed as the document states them,
//! run through the schema with the caller, session and app as context data.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};

use crate::server::api::http::{self, Resp};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;

/// Operations in one batch at most.
pub const MAX_BATCH: usize = 16;

/// One GraphQL request: the body of `POST /graphql`, or one element of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphqlRequest {
    /// The GraphQL document (a syntax error is answered 200 with `errors`).
    pub query: String,
    /// The operation to run when the document holds several.
    #[serde(default, rename = "operationName")]
    pub operation_name: Option<String>,
    /// Variables by name.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Map<String, Value>>,
}

impl GraphqlRequest {
    fn into_request(self) -> async_graphql::Request {
        let mut r = async_graphql::Request::new(self.query);
        if let Some(op) = self.operation_name {
            r = r.operation_name(op);
        }
        if let Some(v) = self.variables {
            r = r.variables(async_graphql::Variables::from_json(Value::Object(v)));
        }
        r
    }
}

/// The body of `POST /graphql`: one request, or a batch of 1 to
/// [`MAX_BATCH`] run in order.
#[derive(Debug)]
pub enum GraphqlBody {
    /// One request.
    One(GraphqlRequest),
    /// A batch.
    Batch(Vec<GraphqlRequest>),
}

impl utoipa::PartialSchema for GraphqlBody {
    fn schema() -> RefOr<Schema> {
        let one = Ref::from_schema_name("GraphqlRequest");
        OneOfBuilder::new()
            .item(one.clone())
            .item(
                ArrayBuilder::new()
                    .items(one)
                    .min_items(Some(1))
                    .max_items(Some(MAX_BATCH)),
            )
            .into()
    }
}

impl ToSchema for GraphqlBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            "GraphqlRequest".into(),
            <GraphqlRequest as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// The answer of `POST /graphql`: a GraphQL response (`data`, `errors`,
/// `extensions`), or an array of them for a batch.
pub struct GraphqlAnswer;

impl utoipa::PartialSchema for GraphqlAnswer {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let one = || ObjectBuilder::new().schema_type(Type::Object);
        OneOfBuilder::new()
            .item(one())
            .item(ArrayBuilder::new().items(one()))
            .into()
    }
}

impl ToSchema for GraphqlAnswer {}

impl GraphqlBody {
    /// Parses a body: an array is a batch.
    pub fn parse(body: &[u8]) -> Result<GraphqlBody, Problem> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            let v: Vec<http::Obj<GraphqlRequest>> = http::parse_json(body)?;
            if v.is_empty() || v.len() > MAX_BATCH {
                return Err(Problem::bad_request(format!(
                    "a batch holds 1 to {MAX_BATCH} operations, got {}",
                    v.len()
                )));
            }
            Ok(GraphqlBody::Batch(v.into_iter().map(|o| o.0).collect()))
        } else {
            Ok(GraphqlBody::One(http::parse_object(body)?))
        }
    }

    fn into_batch(self) -> async_graphql::BatchRequest {
        match self {
            GraphqlBody::One(r) => async_graphql::BatchRequest::Single(r.into_request()),
            GraphqlBody::Batch(v) => async_graphql::BatchRequest::Batch(
                v.into_iter().map(GraphqlRequest::into_request).collect(),
            ),
        }
    }
}

fn is_mutation(doc: &str, op: Option<&str>) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(d) = async_graphql::parser::parse_query(doc) else {
        return false; // the executor reports the syntax error
    };
    match &d.operations {
        DocumentOperations::Single(o) => o.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(m) => match op {
            Some(name) => m
                .get(name)
                .is_some_and(|o| o.node.ty == OperationType::Mutation),
            None => m.values().any(|o| o.node.ty == OperationType::Mutation),
        },
    }
}

async fn execute(req: &Req, batch: async_graphql::BatchRequest) -> Resp {
    let app = req.app.clone();
    let texts: Vec<String> = batch.iter().map(|r| r.query.clone()).collect();
    let mut batch = batch.data(app.clone());
    if let Some(p) = &req.principal {
        batch = batch.data(p.clone());
    }
    if let Some(s) = &req.session {
        batch = batch.data(s.clone());
    }
    let t0 = std::time::Instant::now();
    let resp = app.schema.execute_batch(batch).await;
    let el = t0.elapsed();
    let ok = resp.is_ok();
    for t in &texts {
        app.queries.record(
            "graphql",
            t,
            el / texts.len().max(1) as u32,
            ok,
            app.cfg.slow_query_ms,
        );
    }
    http::ok(&resp)
}

/// `POST /graphql`: a request object or a batch (array), as JSON.
#[utoipa::path(post, path = "/graphql", tag = "graphql", security(("bearer" = [])),
    request_body(content = GraphqlBody, description = "{query, variables, operationName} or an array of 1 to 16 of them"),
    responses((status = 200, description = "GraphQL response (errors inside), an array of them for a batch", body = GraphqlAnswer),
              (status = 400, description = "Not a GraphqlRequest or a batch of 1 to 16")))]
pub async fn http_post(req: Req) -> Result<Resp, Problem> {
    let body = GraphqlBody::parse(&req.body)?;
    Ok(execute(&req, body.into_batch()).await)
}

/// Stands for the `Authorization` header in the playground's configuration;
/// the page replaces it with the token kept in this tab.
const TOKEN_SLOT: &str = "\"rustydb-token-slot\"";

/// A token field for the top of the playground: the token is kept in
/// `sessionStorage` (as the dashboard keeps it) and sent as a bearer header.
const TOKEN_BAR: &str = r#"<body>
<form id="rustydb-token-form" style="position:fixed;top:0;right:0;z-index:9;display:flex;gap:6px;padding:6px;background:#172a3a;font:13px sans-serif;color:#fff">
<label for="rustydb-token">Bearer token</label>
<input id="rustydb-token" type="password" autocomplete="off" spellcheck="false">
<button type="submit">Use</button>
</form>
<script>
document.getElementById("rustydb-token-form").addEventListener("submit", function (e) {
  e.preventDefault();
  sessionStorage.setItem("rustydb.token", document.getElementById("rustydb-token").value.trim());
  location.reload();
});
</script>"#;

/// The GraphQL Playground with a token field: the page is open (it holds no
/// data), the queries it sends carry the token as a bearer header.
pub fn playground_page() -> String {
    let cfg = async_graphql::http::GraphQLPlaygroundConfig::new("/graphql")
        .with_header("Authorization", "rustydb-token-slot");
    async_graphql::http::playground_source(cfg)
        .replacen("<body>", TOKEN_BAR, 1)
        .replacen(
            TOKEN_SLOT,
            r#"("Bearer " + (sessionStorage.getItem("rustydb.token") || ""))"#,
            1,
        )
}

/// `GET /graphql/playground`: the GraphQL Playground page.
#[utoipa::path(get, path = "/graphql/playground", tag = "graphql",
    responses((status = 200, description = "The Playground page, with a token field (the token stays in the tab's sessionStorage)",
               content_type = "text/html", body = String)))]
pub async fn playground(_req: Req) -> Result<Resp, Problem> {
    Ok(http::bytes_response(
        StatusCode::OK,
        "text/html; charset=utf-8",
        playground_page().into_bytes(),
    ))
}

/// `GET /graphql?query=…&variables=…&operationName=…` (queries only); without
/// `query`, the GraphQL Playground page.
#[utoipa::path(get, path = "/graphql", tag = "graphql", security(("bearer" = [])),
    params(("query" = Option<String>, Query, description = "The GraphQL document (without it: the Playground page)"),
           ("variables" = Option<Object>, Query, description = "Variables by name, as a JSON object"),
           ("operationName" = Option<String>, Query, description = "The operation to run when the document holds several")),
    responses((status = 200, description = "GraphQL response, or the Playground page",
               content((Object = "application/json"), (String = "text/html"))),
              (status = 400, description = "`variables` is not a JSON object"),
              (status = 405, description = "A mutation over GET")))]
pub async fn http_get(req: Req) -> Result<Resp, Problem> {
    let Some(q) = req.query.get("query") else {
        return playground(req).await;
    };
    let op = req.query.get("operationName").map(String::from);
    if is_mutation(q, op.as_deref()) {
        return Err(Problem::method_not_allowed(
            "GET",
            "/graphql (mutation)",
            &["POST"],
        ));
    }
    let variables = match req.query.get("variables") {
        None => None,
        Some(v) => match serde_json::from_str::<Value>(v) {
            Ok(Value::Object(m)) => Some(m),
            Ok(Value::Null) => None,
            Ok(_) => {
                return Err(Problem::malformed_json("`variables` must be a JSON object"));
            }
            Err(e) => {
                return Err(Problem::malformed_json(format!(
                    "`variables` is not JSON: {e}"
                )));
            }
        },
    };
    let r = GraphqlRequest {
        query: q.to_string(),
        operation_name: op,
        variables,
    };
    Ok(execute(&req, async_graphql::BatchRequest::Single(r.into_request())).await)
}

#[cfg(test)]
mod tests {
    use super::super::build_schema;
    use super::*;

    #[test]
    fn mutations_are_detected() {
        assert!(is_mutation(
            "mutation { dropTable(name: \"x\") { __typename } }",
            None
        ));
        assert!(!is_mutation("{ schemas { name } }", None));
        assert!(is_mutation(
            "query A { schemas { name } } mutation B { x }",
            Some("B")
        ));
        assert!(!is_mutation(
            "query A { schemas { name } } mutation B { x }",
            Some("A")
        ));
    }

    #[test]
    fn schema_has_the_seed_fields() {
        let sdl = build_schema().sdl();
        for f in [
            "schemas",
            "schema(",
            "tables(",
            "table(",
            "queryTable(",
            "queryTables(",
            "queryTableConnection(",
            "row(",
            "aggregate(",
            "count(",
            "executeSql(",
            "search(",
            "explain(",
            "executeUnion(",
        ] {
            assert!(sdl.contains(&format!("\t{f}")), "missing {f}");
        }
        for t in [
            "type QueryRoot",
            "type MutationRoot",
            "type DatabaseSchema",
            "type TableType",
            "type ColumnType",
            "input AggregateInput",
        ] {
            assert!(sdl.contains(t), "missing {t}");
        }
    }
}
