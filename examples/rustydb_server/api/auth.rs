//! Bearer-token authentication with three roles. Tokens are compared in
//! constant time, against every known token (no early exit on a match).

use std::io::Read;
use std::sync::RwLock;

use hyper::header::{AUTHORIZATION, HeaderMap};
use serde::{Deserialize, Serialize};

use crate::server::api::problem::Problem;

/// Tokens at most (minted ones included).
pub const MAX_TOKENS: usize = 1024;

/// Roles, weakest first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: statistics, listings, GraphQL queries other than `executeSql`.
    Readonly,
    /// Reads and writes: queries, transactions, row mutations.
    Readwrite,
    /// Everything: DDL, `executeSql`, logs, configuration, tokens, memory controls.
    Admin,
}

impl Role {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Readonly => "readonly",
            Role::Readwrite => "readwrite",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "readonly" | "read_only" | "read-only" => Some(Role::Readonly),
            "readwrite" | "read_write" | "read-write" => Some(Role::Readwrite),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health, the OpenAPI document).
    Open,
    /// At least this role.
    Role(Role),
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The token's id (0: anonymous reader).
    pub token_id: u32,
    /// The role.
    pub role: Role,
    /// The token's label.
    pub name: String,
}

impl Principal {
    /// Whether the role is at least `r`.
    pub fn allows(&self, r: Role) -> bool {
        self.role >= r
    }
}

struct TokenEntry {
    id: u32,
    role: Role,
    label: String,
    secret: Vec<u8>,
    created_at: u64,
    builtin: bool,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Id.
    pub token_id: u32,
    /// Role.
    pub role: Role,
    /// Label.
    pub label: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Given at start (flag, environment or generated): cannot be revoked.
    pub builtin: bool,
}

/// The known tokens.
pub struct Auth {
    tokens: RwLock<Vec<TokenEntry>>,
    anonymous_reads: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

/// `a == b` in time that depends only on the lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    // black_box keeps the loop from being turned into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// A fresh random token: 32 bytes from the OS as 64 hex digits.
pub fn generate_token() -> std::io::Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Auth {
    /// Tokens from the configuration (`admin` must be present).
    pub fn new(
        admin: &str,
        readwrite: Option<&str>,
        readonly: Option<&str>,
        anonymous_reads: bool,
    ) -> Self {
        let now = crate::server::api::http::unix_now();
        let mut v = vec![TokenEntry {
            id: 1,
            role: Role::Admin,
            label: "admin".into(),
            secret: admin.as_bytes().to_vec(),
            created_at: now,
            builtin: true,
        }];
        for (role, t) in [(Role::Readwrite, readwrite), (Role::Readonly, readonly)] {
            if let Some(t) = t {
                v.push(TokenEntry {
                    id: v.len() as u32 + 1,
                    role,
                    label: role.as_str().into(),
                    secret: t.as_bytes().to_vec(),
                    created_at: now,
                    builtin: true,
                });
            }
        }
        Self {
            tokens: RwLock::new(v),
            anonymous_reads,
        }
    }

    /// Who sent `headers`: `Ok(None)` without an `Authorization` header (and no
    /// anonymous reads), `Err(401)` for a malformed header or unknown token.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Option<Principal>, Problem> {
        let Some(h) = headers.get(AUTHORIZATION) else {
            return Ok(self.anonymous_reads.then(|| Principal {
                token_id: 0,
                role: Role::Readonly,
                name: "anonymous".into(),
            }));
        };
        let s = h
            .to_str()
            .map_err(|_| Problem::unauthorized("the Authorization header is not ASCII", true))?;
        let (scheme, token) = s.trim().split_once(' ').unwrap_or((s, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Problem::unauthorized(
                "use `Authorization: Bearer <token>`",
                true,
            ));
        }
        let token = token.trim().as_bytes();
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let mut found: Option<&TokenEntry> = None;
        for t in tokens.iter() {
            // Every token is compared; no early exit.
            if ct_eq(&t.secret, token) {
                found = Some(t);
            }
        }
        match found {
            Some(t) => Ok(Some(Principal {
                token_id: t.id,
                role: t.role,
                name: t.label.clone(),
            })),
            None => Err(Problem::unauthorized("the bearer token is not valid", true)),
        }
    }

    /// Checks `access` for `headers`: the principal (None for an open route
    /// called without a token) or 401/403.
    pub fn check(&self, headers: &HeaderMap, access: Access) -> Result<Option<Principal>, Problem> {
        let who = match access {
            Access::Open => return Ok(self.identify(headers).ok().flatten()),
            Access::Role(_) => self.identify(headers)?,
        };
        let Access::Role(need) = access else {
            unreachable!()
        };
        match who {
            None => Err(Problem::unauthorized(
                "this endpoint needs `Authorization: Bearer <token>`",
                false,
            )),
            Some(p) if p.allows(need) => Ok(Some(p)),
            // An anonymous reader asking for more: a token would help, so 401.
            Some(p) if p.token_id == 0 => Err(Problem::unauthorized(
                format!(
                    "this needs the {} role: send `Authorization: Bearer <token>`",
                    need.as_str()
                ),
                false,
            )),
            Some(p) => Err(Problem::forbidden(format!(
                "this needs the {} role; the token has the {} role",
                need.as_str(),
                p.role.as_str()
            ))
            .with("required_role", need)
            .with("role", p.role)),
        }
    }

    /// Mints a token for `role`.
    pub fn mint(&self, role: Role, label: &str) -> std::io::Result<(TokenInfo, String)> {
        let secret = generate_token()?;
        let mut g = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        if g.len() >= MAX_TOKENS {
            return Err(std::io::Error::other(format!(
                "{MAX_TOKENS} tokens exist; revoke some first"
            )));
        }
        let id = g.iter().map(|t| t.id).max().unwrap_or(0) + 1;
        let e = TokenEntry {
            id,
            role,
            label: label.to_string(),
            secret: secret.as_bytes().to_vec(),
            created_at: crate::server::api::http::unix_now(),
            builtin: false,
        };
        let info = info(&e);
        g.push(e);
        Ok((info, secret))
    }

    /// Lists the tokens (without secrets).
    pub fn list(&self) -> Vec<TokenInfo> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(info)
            .collect()
    }

    /// Revokes a minted token: `Ok(true)` if it existed, `Err` for a builtin one.
    pub fn revoke(&self, id: u32) -> Result<bool, Problem> {
        let mut g = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        match g.iter().position(|t| t.id == id) {
            None => Ok(false),
            Some(i) if g[i].builtin => Err(Problem::conflict(format!(
                "token {id} was given at start and cannot be revoked"
            ))),
            Some(i) => {
                g.remove(i);
                Ok(true)
            }
        }
    }
}

fn info(t: &TokenEntry) -> TokenInfo {
    TokenInfo {
        token_id: t.id,
        role: t.role,
        label: t.label.clone(),
        created_at: t.created_at,
        builtin: t.builtin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn roles_and_errors() {
        let a = Auth::new(
            "admin-token-0123456789",
            None,
            Some("ro-token-0123456789"),
            false,
        );
        let none = HeaderMap::new();
        assert_eq!(
            a.check(&none, Access::Role(Role::Readonly))
                .unwrap_err()
                .status,
            401
        );
        assert!(a.check(&none, Access::Open).unwrap().is_none());
        let bad = a
            .check(&h("Bearer nope"), Access::Role(Role::Readonly))
            .unwrap_err();
        assert_eq!(bad.status, 401);
        assert!(
            bad.headers
                .iter()
                .any(|(k, v)| *k == "www-authenticate" && v.contains("invalid_token"))
        );
        assert_eq!(
            a.check(&h("Basic abc"), Access::Role(Role::Readonly))
                .unwrap_err()
                .status,
            401
        );
        let ro = h("Bearer ro-token-0123456789");
        assert_eq!(
            a.check(&ro, Access::Role(Role::Readonly))
                .unwrap()
                .unwrap()
                .role,
            Role::Readonly
        );
        assert_eq!(
            a.check(&ro, Access::Role(Role::Readwrite))
                .unwrap_err()
                .status,
            403
        );
        let ad = h("bearer admin-token-0123456789");
        assert_eq!(
            a.check(&ad, Access::Role(Role::Admin))
                .unwrap()
                .unwrap()
                .role,
            Role::Admin
        );
        let (info, secret) = a.mint(Role::Readwrite, "ci").unwrap();
        let rw = h(&format!("Bearer {secret}"));
        assert!(a.check(&rw, Access::Role(Role::Readwrite)).is_ok());
        assert!(a.revoke(info.token_id).unwrap());
        assert_eq!(
            a.check(&rw, Access::Role(Role::Readonly))
                .unwrap_err()
                .status,
            401
        );
        assert!(a.revoke(1).is_err());
    }
}
