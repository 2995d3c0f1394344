//! HTTP plumbing shared by the handlers: responses, bounded bodies, JSON,
//! query strings and time.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Bytes};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::server::api::problem::Problem;

/// A response body: buffered (every answer but one), or a stream of frames
/// (the Server-Sent Events of `GET /api/v1/memory/history/stream`).
pub type RespBody = Either<Full<Bytes>, UnsyncBoxBody<Bytes, Infallible>>;

/// A response.
pub type Resp = Response<RespBody>;

/// A response with `body` and `content_type`.
pub fn bytes_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A response whose body is streamed as `body` yields frames.
pub fn stream_response(
    status: StatusCode,
    content_type: &'static str,
    body: UnsyncBoxBody<Bytes, Infallible>,
) -> Resp {
    let mut r = Response::new(Either::Right(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `value` as a JSON response.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Resp {
    let mut buf = Vec::with_capacity(512);
    match serde_json::to_writer(&mut buf, value) {
        Ok(()) => bytes_response(status, "application/json", buf),
        Err(e) => {
            Problem::internal(format!("response serialisation failed: {e}")).into_response(None)
        }
    }
}

/// 200 with `value` as JSON.
pub fn ok<T: Serialize + ?Sized>(value: &T) -> Resp {
    json(StatusCode::OK, value)
}

/// Reads the whole body, refusing more than `limit` bytes with 413 (checked
/// against `Content-Length` first, then while reading).
pub async fn collect_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, Problem>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let n = len
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| Problem::bad_request("Content-Length is not a number"))?;
        if n > limit as u64 {
            return Err(Problem::too_large(limit));
        }
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(Problem::too_large(limit))
            } else {
                Err(Problem::bad_request(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
    }
}

/// Checks that a body, if any, is declared as JSON (a missing Content-Type is accepted).
pub fn require_json_content(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(ct) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let s = ct.to_str().unwrap_or("(not ASCII)");
    let essence = s
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(Problem::unsupported_media(s))
    }
}

/// Parses a JSON body into `T` (400 with the parser's position on failure).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::malformed_json(
            "the request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(body).map_err(|e| Problem::malformed_json(format!("{e}")))
}

/// A `T` read from a JSON object only. serde's derive also builds a struct
/// from an array of its fields in order (`[null, 4096]`), which the document
/// does not allow: the object is read first, then `T` from it.
#[derive(Debug, Clone)]
pub struct Obj<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let m = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        T::deserialize(serde_json::Value::Object(m))
            .map(Obj)
            .map_err(D::Error::custom)
    }
}

/// Parses a JSON body that must be an object into `T` (400 otherwise).
pub fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    parse_json::<Obj<T>>(body).map(|o| o.0)
}

/// Parses a JSON body into `T`, or `T::default()` when the body is empty.
pub fn parse_json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

/// The largest integer the document's `int64` allows (query parameters and
/// body fields that are u64 in Rust are capped here, so a value the document
/// refuses is refused by the handler too).
pub const I64_MAX: u64 = i64::MAX as u64;

/// A whole number from JSON for a `u64` field: `4096` or `4096.0` (JSON
/// Schema's `integer` is any number without a fractional part), never
/// `4096.5`, a negative number or one beyond `u64`.
pub fn whole_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return Ok(u);
    }
    match n.as_f64() {
        // 2^64 is the first float beyond u64.
        Some(f) if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) => {
            Ok(f as u64)
        }
        _ => Err(D::Error::custom(format!(
            "expected a whole number from 0 to {}, got {n}",
            u64::MAX
        ))),
    }
}

/// [`whole_u64`] for an optional field (`null` or absent is `None`).
pub fn whole_u64_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "whole_u64")] u64);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

/// Decoded `key=value` pairs of a query string.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=x%20y`; `+` is a space.
    pub fn parse(q: Option<&str>) -> Result<Query, Problem> {
        let mut v = Vec::new();
        for part in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, val) = part.split_once('=').unwrap_or((part, ""));
            v.push((percent_decode(k)?, percent_decode(val)?));
        }
        Ok(Query(v))
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An integer parameter within `range`, or `default` when absent.
    pub fn int(
        &self,
        key: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, Problem> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        // Digits only: no sign, no spaces (what the document's `integer` allows).
        let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        let n: u64 = v.parse().ok().filter(|_| digits).ok_or_else(|| {
            Problem::bad_request(format!(
                "query parameter `{key}` must be a whole number, got `{v}`"
            ))
            .with("parameter", key)
        })?;
        if !range.contains(&n) {
            return Err(Problem::bad_request(format!(
                "query parameter `{key}` must be between {} and {}, got {n}",
                range.start(),
                range.end()
            ))
            .with("parameter", key));
        }
        Ok(n)
    }
}

/// Decodes `%XX` escapes and `+`.
pub fn percent_decode(s: &str) -> Result<String, Problem> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Problem::bad_request("malformed percent-encoding in the URL"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Problem::bad_request("the URL does not decode to UTF-8"))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// RFC 3339 UTC time (`2025-12-11T16:41:08.123Z`) of `ms` since the epoch.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_765_471_268_123), "2025-12-11T16:41:08.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn objects_only() {
        #[derive(Debug, Deserialize)]
        struct T {
            #[allow(dead_code)]
            a: Option<u64>,
        }
        assert!(parse_object::<T>(br#"{"a": 1}"#).is_ok());
        assert!(
            serde_json::from_slice::<T>(b"[1]").is_ok(),
            "serde's default"
        );
        assert!(parse_object::<T>(b"[1]").is_err());
        assert!(parse_object::<T>(b"null").is_err());
        assert!(parse_json::<Vec<Obj<T>>>(b"[[1]]").is_err());
        assert!(parse_json::<Vec<Obj<T>>>(br#"[{"a": 1}]"#).is_ok());
    }

    #[test]
    fn whole_numbers_from_json() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "whole_u64")]
            a: u64,
            #[serde(default, deserialize_with = "whole_u64_opt")]
            b: Option<u64>,
        }
        let t: T = serde_json::from_str(r#"{"a": 4096.0, "b": 7}"#).unwrap();
        assert_eq!((t.a, t.b), (4096, Some(7)));
        let t: T = serde_json::from_str(r#"{"a": 1e3, "b": null}"#).unwrap();
        assert_eq!((t.a, t.b), (1000, None));
        let t: T = serde_json::from_str(r#"{"a": 18446744073709551615}"#).unwrap();
        assert_eq!((t.a, t.b), (u64::MAX, None));
        for bad in [
            r#"{"a": 1.5}"#,
            r#"{"a": -1}"#,
            r#"{"a": 1e30}"#,
            r#"{"a": "1"}"#,
            r#"{"a": 1, "b": 0.5}"#,
        ] {
            assert!(serde_json::from_str::<T>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_strings_decode_and_validate() {
        let q = Query::parse(Some("page=2&page_size=10&name=a%20b+c")).unwrap();
        assert_eq!(q.get("name"), Some("a b c"));
        assert_eq!(q.int("page", 1, 1..=100).unwrap(), 2);
        assert_eq!(q.int("missing", 7, 1..=100).unwrap(), 7);
        assert!(q.int("page_size", 1, 20..=30).is_err());
        assert!(Query::parse(Some("x=%zz")).is_err());
        let q = Query::parse(Some("a=+5&b=%205&c=5")).unwrap();
        assert!(q.int("a", 0, 0..=9).is_err());
        assert!(q.int("b", 0, 0..=9).is_err());
        assert_eq!(q.int("c", 0, 0..=9).unwrap(), 5);
        assert!(Query::parse(Some("x=%ff")).is_err());
    }
}
