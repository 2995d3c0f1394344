//! RFC 9457 problem details: every error the server returns is an
//! `application/problem+json` body with a type, title, status and detail.

use hyper::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::server::api::http::{self, Resp};

/// A problem (RFC 9457). `type` is a URN naming the problem class; `title` is
/// the same for every occurrence of the class; `detail` says what happened here.
#[derive(Debug, Clone)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// The class, e.g. `not-found` (rendered as `urn:rustydb:problem:not-found`).
    pub kind: &'static str,
    /// Short, fixed summary of the class.
    pub title: &'static str,
    /// This occurrence.
    pub detail: String,
    /// Extension members (boxed: a `Problem` travels in every `Result`).
    pub ext: Box<Map<String, Value>>,
    /// Extra response headers (`Allow`, `WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl Problem {
    /// A problem of `kind` with `status` and `title`.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            title,
            detail: detail.into(),
            ext: Box::default(),
            headers: Vec::new(),
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, v: impl Serialize) -> Self {
        self.ext.insert(
            key.to_string(),
            serde_json::to_value(v).unwrap_or(Value::Null),
        );
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((name, v.into()));
        self
    }

    /// 400: a parameter or field is invalid.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Invalid request parameter",
            detail,
        )
    }

    /// 400: the body is not valid JSON (or not the expected shape).
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON body",
            detail,
        )
    }

    /// 401 with a `WWW-Authenticate` challenge (RFC 6750).
    pub fn unauthorized(detail: impl Into<String>, invalid_token: bool) -> Self {
        let challenge = if invalid_token {
            r#"Bearer realm="rustydb", error="invalid_token""#
        } else {
            r#"Bearer realm="rustydb""#
        };
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        )
        .header("www-authenticate", challenge)
    }

    /// 403: authenticated, but the role does not allow it.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Insufficient role",
            detail,
        )
        .header(
            "www-authenticate",
            r#"Bearer realm="rustydb", error="insufficient_scope""#,
        )
    }

    /// 404: nothing at this path, or no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Resource not found",
            detail,
        )
    }

    /// 405 with an `Allow` header.
    pub fn method_not_allowed(method: &str, path: &str, allow: &[&str]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!(
                "{method} is not allowed on {path}; use {}",
                allow.join(", ")
            ),
        )
        .header("allow", allow.join(", "))
        .with("allowed_methods", allow)
    }

    /// 409: the resource is not in a state that allows this.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "conflict",
            "Conflicting state",
            detail,
        )
    }

    /// 413: the body is larger than `--max-body-bytes`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the request body exceeds the limit of {limit} bytes (--max-body-bytes)"),
        )
        .with("limit_bytes", limit)
        // The rest of the body is not read: the connection cannot be reused.
        .header("connection", "close")
    }

    /// 415: a body that is not JSON.
    pub fn unsupported_media(got: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("expected application/json, got `{got}`"),
        )
    }

    /// 500: a handler failed (a panic is caught and becomes this).
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal server error",
            detail,
        )
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
        retry_after_secs: u64,
    ) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, kind, title, detail)
            .header("retry-after", retry_after_secs.to_string())
    }

    /// The `type` member.
    pub fn type_uri(&self) -> String {
        format!("urn:rustydb:problem:{}", self.kind)
    }

    /// The JSON body.
    pub fn body(&self, instance: Option<&str>) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), Value::String(self.type_uri()));
        m.insert("title".into(), Value::String(self.title.into()));
        m.insert("status".into(), Value::from(self.status.as_u16()));
        m.insert("detail".into(), Value::String(self.detail.clone()));
        if let Some(i) = instance {
            m.insert("instance".into(), Value::String(i.into()));
        }
        for (k, v) in self.ext.iter() {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(m)
    }

    /// The response (`instance` is the request path).
    pub fn into_response(self, instance: Option<&str>) -> Resp {
        let body = serde_json::to_vec(&self.body(instance)).unwrap_or_default();
        let mut r = http::bytes_response(self.status, "application/problem+json", body);
        for (k, v) in self.headers {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
                r.headers_mut().append(k, v);
            }
        }
        r
    }
}

impl From<serde_json::Error> for Problem {
    fn from(e: serde_json::Error) -> Self {
        Problem::malformed_json(e.to_string())
    }
}
