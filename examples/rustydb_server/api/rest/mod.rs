//! REST handlers, by concern. Each is `async fn(Req) -> Result<Resp, Problem>`
//! and carries a `utoipa::path` description for `GET /api/v1/openapi.json`.

pub mod admin;
pub mod cluster;
pub mod history;
pub mod memory;
pub mod monitor;
pub mod pools;
pub mod sql;
pub mod stats;
pub mod txns;
