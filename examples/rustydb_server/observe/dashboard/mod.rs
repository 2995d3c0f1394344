//! `GET /dashboard`: one page plotting the history ring live, its assets
//! embedded in the binary (no network at run time). The plots are drawn by
//! uPlot 1.6.32, vendored from the npm registry with its licence
//! (`assets/vendor/uplot/`, checked by `scripts/vendor_uplot.sh`); the page's
//! own code signs in, reads the history and the stream, and feeds uPlot.
//!
//! Caching: the page is revalidated on every load (`no-cache` with an ETag);
//! it names each asset with `?v=<hash of its bytes>`, and an asset asked for
//! with its current hash is `immutable` for a year. Any other request for an
//! asset is revalidated too. `If-None-Match` is answered 304.
//!
//! The page and its assets are open (they hold no data); everything they
//! show comes from the API with the bearer token the user signs in with.

use std::sync::OnceLock;

use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, ETAG, HeaderValue, IF_NONE_MATCH};

use crate::server::api::http::{self, Resp};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/dashboard/assets/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// The assets, by name.
pub static ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/dashboard.js"),
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/dashboard.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/vendor/uplot/uPlot.min.css"),
    },
    Asset {
        name: "uPlot.LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("assets/vendor/uplot/LICENSE"),
    },
];

const INDEX: &str = include_str!("assets/index.html");

/// FNV-1a, 64 bits: names a version of an asset (not a security property).
pub fn hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn hashes() -> &'static [String] {
    static H: OnceLock<Vec<String>> = OnceLock::new();
    H.get_or_init(|| ASSETS.iter().map(|a| hash(a.bytes)).collect())
}

/// The page, with every `{{name}}` replaced by the hash of asset `name`.
pub fn page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        let mut s = INDEX.to_string();
        for (a, h) in ASSETS.iter().zip(hashes()) {
            s = s.replace(&format!("{{{{{}}}}}", a.name), h);
        }
        s
    })
}

fn etag(h: &str) -> String {
    format!("\"{h}\"")
}

fn not_modified(req: &Req, tag: &str) -> bool {
    req.headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
}

fn respond(req: &Req, content_type: &'static str, body: &[u8], tag: String, cache: &str) -> Resp {
    let mut r = if not_modified(req, &tag) {
        http::bytes_response(StatusCode::NOT_MODIFIED, content_type, Vec::new())
    } else {
        http::bytes_response(StatusCode::OK, content_type, body.to_vec())
    };
    if let Ok(v) = HeaderValue::from_str(&tag) {
        r.headers_mut().insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(cache) {
        r.headers_mut().insert(CACHE_CONTROL, v);
    }
    r
}

/// `GET /dashboard`.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag of the page")),
    responses((status = 200, description = "The page (revalidated on every load)", content_type = "text/html", body = String,
               headers(("ETag" = String), ("Cache-Control" = String))),
              (status = 304, description = "Not modified", headers(("ETag" = String)))))]
pub async fn index(req: Req) -> Result<Resp, Problem> {
    let p = page();
    Ok(respond(
        &req,
        "text/html; charset=utf-8",
        p.as_bytes(),
        etag(&hash(p.as_bytes())),
        "no-cache",
    ))
}

/// The names `GET /dashboard/assets/{name}` serves.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
#[allow(missing_docs)]
pub enum AssetName {
    #[serde(rename = "dashboard.js")]
    DashboardJs,
    #[serde(rename = "dashboard.css")]
    DashboardCss,
    #[serde(rename = "uPlot.iife.min.js")]
    UplotJs,
    #[serde(rename = "uPlot.min.css")]
    UplotCss,
    #[serde(rename = "uPlot.LICENSE.txt")]
    UplotLicense,
}

/// `GET /dashboard/assets/{name}`: a script, a stylesheet or uPlot's licence.
#[utoipa::path(get, path = "/dashboard/assets/{name}", tag = "dashboard",
    params(("name" = AssetName, Path, description = "The asset"),
           ("v" = Option<String>, Query, description = "The asset's hash as the page names it: the answer is then immutable"),
           ("If-None-Match" = Option<String>, Header, description = "An ETag of the asset")),
    responses((status = 200, description = "The asset", body = String,
               content((String = "text/javascript"), (String = "text/css"), (String = "text/plain")),
               headers(("ETag" = String), ("Cache-Control" = String))),
              (status = 304, description = "Not modified", headers(("ETag" = String))),
              (status = 404, description = "No such asset")))]
pub async fn asset(req: Req) -> Result<Resp, Problem> {
    let name = req.param(0);
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return Err(Problem::not_found(format!("no dashboard asset `{name}`")));
    };
    let (a, h) = (&ASSETS[i], &hashes()[i]);
    let cache = if req.query.get("v") == Some(h.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok(respond(&req, a.content_type, a.bytes, etag(h), cache))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_by_its_hash() {
        let p = page();
        assert!(!p.contains("{{"), "every placeholder is replaced");
        for (a, h) in ASSETS.iter().zip(hashes()) {
            if a.name.ends_with(".txt") {
                continue;
            }
            assert!(
                p.contains(&format!("/dashboard/assets/{}?v={h}", a.name)),
                "{}",
                a.name
            );
        }
        // Page weight: the page and everything it loads.
        let weight: usize = p.len() + ASSETS.iter().map(|a| a.bytes.len()).sum::<usize>();
        assert!(weight <= 200 << 10, "{weight} bytes");
    }

    #[test]
    fn uplot_is_the_pinned_release() {
        let js = std::str::from_utf8(ASSETS[2].bytes).unwrap();
        assert!(js.starts_with("/*! https://github.com/leeoniya/uPlot (v1.6.32) */"));
        let lic = std::str::from_utf8(ASSETS[4].bytes).unwrap();
        assert!(lic.contains("MIT License") && lic.contains("Leon Sorokin"));
    }
}
