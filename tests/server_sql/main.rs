//! SQL end to end: the example server with its GlueSQL engine over the buffer
//! pool, on an ephemeral port — the seed's SQL cases, restart, transactions
//! and their memory contexts, the per-query memory limit, concurrent
//! clients, GraphQL data fields; and the storage on a 64-page pool directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustydb_memory::{DebugAlloc, MemoryContext, MemoryManager, RustyAlloc};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: DebugAlloc<RustyAlloc> = DebugAlloc::new(RustyAlloc::new());

#[path = "../../examples/rustydb_server/server.rs"]
mod server;

#[path = "../common/server.rs"]
mod harness;

use harness::{Client, Reply};
use server::sql::engine::{Mode, QueryCall, SqlEngine, SqlError};
use server::sql::glue::GlueEngine;

const ADMIN: &str = "admin-token-sql-0123456789";
const RW: &str = "readwrite-token-sql-0123456789";
const RO: &str = "readonly-token-sql-0123456789";

fn temp_dir(tag: &str) -> PathBuf {
    harness::temp_dir("sql", tag)
}

fn config(dir: &Path) -> server::config::Config {
    let tokens = harness::Tokens {
        admin: ADMIN,
        readwrite: RW,
        readonly: RO,
    };
    server::config::Config {
        buffer_pool_pages: 128,
        ..harness::config(dir, tokens)
    }
}

async fn start(cfg: server::config::Config) -> server::Running {
    harness::start(cfg, MemoryManager::global(), Some(&GLOBAL)).await
}

/// The SQL calls these tests make, on the shared client.
trait Sql {
    async fn sql(&mut self, token: &str, sql: &str) -> Reply;
    async fn sql_in(&mut self, token: &str, sql: &str, txn: u64) -> Reply;
    async fn rows(&mut self, token: &str, sql: &str) -> Vec<Value>;
    async fn count(&mut self, table: &str) -> i64;
}

impl Sql for Client {
    async fn sql(&mut self, token: &str, sql: &str) -> Reply {
        self.post("/api/v1/query", token, json!({ "sql": sql }))
            .await
    }

    async fn sql_in(&mut self, token: &str, sql: &str, txn: u64) -> Reply {
        self.post(
            "/api/v1/query",
            token,
            json!({ "sql": sql, "transaction_id": txn }),
        )
        .await
    }

    async fn rows(&mut self, token: &str, sql: &str) -> Vec<Value> {
        let v = self.sql(token, sql).await.ok();
        v["rows"].as_array().unwrap().clone()
    }

    async fn count(&mut self, table: &str) -> i64 {
        let rows = self
            .rows(RO, &format!("SELECT COUNT(*) AS n FROM {table}"))
            .await;
        rows[0][0].as_i64().unwrap()
    }
}

fn context_ids(v: &Value) -> Vec<u64> {
    v["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect()
}

mod seed;
mod storage;
mod txns;
