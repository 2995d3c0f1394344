//! `/api/v1/transactions*`: begin, inspect, commit, roll back.

use std::sync::Arc;

use hyper::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::server::api::auth::Principal;
use crate::server::api::http::{self, Resp};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;
use crate::server::memory::sessions::Session;
use crate::server::sql::engine::IsolationLevel;
use crate::server::sql::exec;
use crate::server::sql::txn::{self, Outcome, TxnInfo};
use crate::server::state::App;

/// `POST /api/v1/transactions` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginRequest {
    /// `READ_UNCOMMITTED`, `READ_COMMITTED` (default), `REPEATABLE_READ`, `SERIALIZABLE`.
    pub isolation_level: Option<IsolationLevel>,
    /// Limit of the transaction's memory context (4096 up to `--txn-memory-limit`, the default).
    #[serde(default, deserialize_with = "http::whole_u64_opt")]
    #[schema(minimum = 4096)]
    pub memory_limit_bytes: Option<u64>,
}

/// Begins a transaction for `who` in `session`.
pub async fn begin_txn(
    app: &Arc<App>,
    who: &Principal,
    session: &Arc<Session>,
    isolation: IsolationLevel,
    limit: Option<u64>,
) -> Result<TxnInfo, Problem> {
    exec::admit(app, 0)?;
    let max = app.cfg.txn_memory_limit;
    let limit = match limit {
        None => max,
        Some(l) if (4096..=max).contains(&l) => l,
        Some(l) => {
            return Err(Problem::bad_request(format!(
                "memory_limit_bytes must be 4096 to {max} (--txn-memory-limit), got {l}"
            )));
        }
    };
    let id = app.txns.next_id();
    let e = app.engine.clone();
    let granted = exec::blocking(move || e.begin(id, isolation))
        .await
        .map_err(|e| e.problem())?;
    let t = match app.txns.insert(id, session.clone(), granted, limit) {
        Ok(t) => t,
        Err(p) => {
            let _ = exec::end_txn(app, id, false).await;
            return Err(p);
        }
    };
    app.logs.info(
        "txn",
        format!(
            "transaction {id} begun ({isolation:?}) by {} in session {}; context txn:{id} limit {limit} B",
            who.name, session.id
        ),
    );
    Ok(app.txns.describe(&t))
}

/// Commits (`commit`) or rolls back transaction `id_text` for `who`.
pub async fn finish_txn(
    app: &Arc<App>,
    who: &Principal,
    id_text: &str,
    commit: bool,
) -> Result<TxnInfo, Problem> {
    let id = txn::parse_id(id_text)?;
    app.txns.get(id)?.check_owner(who)?;
    let t = app.txns.take(id)?;
    let r = exec::end_txn(app, id, commit).await;
    match r {
        Ok(()) => {
            let outcome = if commit {
                Outcome::Committed
            } else {
                Outcome::RolledBack
            };
            let info = app.txns.finish(t, outcome);
            app.logs.info(
                "txn",
                format!(
                    "transaction {id} {} after {} statement(s); context txn:{id} released {} B",
                    info.status,
                    info.statements,
                    info.memory.released_bytes.unwrap_or(0)
                ),
            );
            Ok(info)
        }
        Err(err) if commit => {
            // A failed commit leaves nothing applied: roll back and report.
            let _ = exec::end_txn(app, id, false).await;
            let info = app.txns.finish(t, Outcome::RolledBack);
            app.logs.warn(
                "txn",
                format!("transaction {id} failed to commit and was rolled back: {err}"),
            );
            Err(Problem::conflict(format!(
                "commit of transaction {id} failed and it was rolled back: {err}"
            ))
            .with("transaction", info))
        }
        Err(err) => {
            app.txns.restore(t);
            Err(err.problem())
        }
    }
}

/// Open transactions.
#[utoipa::path(get, path = "/api/v1/transactions", tag = "transactions", security(("bearer" = [])),
    responses((status = 200, body = Vec<TxnInfo>)))]
pub async fn list(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(&req.app.txns.list()))
}

/// Begins a transaction: a new memory context (child of the session's).
#[utoipa::path(post, path = "/api/v1/transactions", tag = "transactions", security(("bearer" = [])),
    request_body(content = Option<BeginRequest>, description = "Optional: an empty body takes the defaults"),
    responses((status = 201, body = TxnInfo,
               headers(("Location" = String, description = "The transaction's URL"))),
              (status = 400, description = "Not a BeginRequest, or `memory_limit_bytes` out of range"),
              (status = 409, description = "The SQL engine refused to begin (conflicting state)"),
              (status = 501, description = "No SQL engine is plugged in"),
              (status = 503, description = "Memory pressure at its emergency level, or 10 000 transactions are open")))]
pub async fn begin(req: Req) -> Result<Resp, Problem> {
    // Empty, `null` or an object.
    let b: BeginRequest =
        http::parse_json_or_default::<Option<http::Obj<BeginRequest>>>(&req.body)?
            .map_or_else(Default::default, |o| o.0);
    let info = begin_txn(
        &req.app,
        req.who()?,
        req.sess()?,
        b.isolation_level.unwrap_or_default(),
        b.memory_limit_bytes,
    )
    .await?;
    let mut r = http::json(StatusCode::CREATED, &info);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!(
        "/api/v1/transactions/{}",
        info.transaction_id
    )) {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    Ok(r)
}

/// One open transaction (409 once finished, 404 if unknown).
#[utoipa::path(get, path = "/api/v1/transactions/{id}", tag = "transactions", security(("bearer" = [])),
    params(("id" = u64, Path)),
    responses((status = 200, body = TxnInfo), (status = 404, description = "No such transaction"),
              (status = 409, description = "The transaction has finished")))]
pub async fn get(req: Req) -> Result<Resp, Problem> {
    let id = txn::parse_id(req.param(0))?;
    let t = req.app.txns.get(id)?;
    Ok(http::ok(&req.app.txns.describe(&t)))
}

/// Commits: the transaction's memory context is dropped.
#[utoipa::path(post, path = "/api/v1/transactions/{id}/commit", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path, description = "The id POST /api/v1/transactions answered")),
    responses((status = 200, body = TxnInfo),
              (status = 403, description = "The transaction belongs to another token"),
              (status = 404, description = "No such transaction"),
              (status = 409, description = "The transaction has finished, or its commit failed and it was rolled back"),
              (status = 501, description = "No SQL engine is plugged in")))]
pub async fn commit(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(
        &finish_txn(&req.app, req.who()?, req.param(0), true).await?,
    ))
}

/// Rolls back: the transaction's memory context is dropped.
#[utoipa::path(post, path = "/api/v1/transactions/{id}/rollback", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path, description = "The id POST /api/v1/transactions answered")),
    responses((status = 200, body = TxnInfo),
              (status = 403, description = "The transaction belongs to another token"),
              (status = 404, description = "No such transaction"),
              (status = 409, description = "The transaction has finished, or its commit failed and it was rolled back"),
              (status = 501, description = "No SQL engine is plugged in")))]
pub async fn rollback(req: Req) -> Result<Resp, Problem> {
    Ok(http::ok(
        &finish_txn(&req.app, req.who()?, req.param(0), false).await?,
    ))
}
