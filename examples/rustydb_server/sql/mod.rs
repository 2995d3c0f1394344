//! SQL and storage: the engine seam, running statements (admission, per-query
//! memory contexts), transactions, SQL text built from structured requests, and
//! the GlueSQL engine over buffer-pool pages (`glue/`).

pub mod engine;
pub mod exec;
pub mod glue;
pub mod storage;
pub mod text;
pub mod txn;
pub mod workers;
