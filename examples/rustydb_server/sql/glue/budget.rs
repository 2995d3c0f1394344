//! Up-front estimates of what a statement will materialise before the
//! engine sees a row: GlueSQL builds a whole result (and every string a
//! function returns) on the global heap, so `REPEAT('A', 1e11)` or a cross
//! join of large `SERIES`/`VALUES` sources must be refused before it runs.
//!
//! The estimate is read from the parsed statement (as generic JSON, via
//! sqlparser's serde): for `REPEAT`/`LPAD`/`RPAD`, the product of the numeric
//! literals in the call times its longest string literal; for each `FROM`,
//! the product of the row counts of its sources (`SERIES(n)`: n, `VALUES`:
//! its rows, a table: 1, as table rows are charged when read) times a
//! nominal row size. It is a bound on literals only; rows read from tables
//! and result rows are charged as they come (see `storage.rs`).

use gluesql_core::sqlparser::ast::Statement;

use crate::server::sql::engine::SqlError;
use serde_json::Value as Json;

/// Bytes counted per row of a generated source.
const ROW_BYTES: f64 = 64.0;

/// Both up-front checks on one reading of the statement (the AST is turned
/// into JSON once per statement): a call GlueSQL would panic on →
/// `SqlError::Invalid`; more bytes from literals than `limit` →
/// `SqlError::MemoryLimit`.
pub fn check(stmt: &Statement, limit: Option<u64>) -> Result<(), SqlError> {
    within(assess(stmt)?, limit)
}

/// The statement's estimate in bytes, or why GlueSQL must not see it (the
/// part of [`check`] that does not depend on the limit, cached with a
/// parsed statement).
pub fn assess(stmt: &Statement) -> Result<u64, SqlError> {
    let Ok(v) = serde_json::to_value(stmt) else {
        return Ok(0);
    };
    if let Some(why) = refuse_json(&v) {
        return Err(SqlError::Invalid(why));
    }
    Ok(estimate_json(&v))
}

/// An estimate against a limit.
pub fn within(want: u64, limit: Option<u64>) -> Result<(), SqlError> {
    match limit {
        Some(limit) if want > limit => Err(SqlError::MemoryLimit {
            limit,
            requested: want,
        }),
        _ => Ok(()),
    }
}

/// The estimated bytes the statement `v` (as JSON) materialises from its literals.
fn estimate_json(v: &Json) -> u64 {
    let mut total = 0.0;
    walk(v, &mut total);
    if total.is_finite() {
        total.min(u64::MAX as f64) as u64
    } else {
        u64::MAX
    }
}

/// A call GlueSQL 0.20 would panic on rather than refuse: `REPEAT`, `LPAD`
/// or `RPAD` with a negative literal count ("capacity overflow"), named in
/// the message so the caller can answer 400.
fn refuse_json(v: &Json) -> Option<String> {
    let mut found = None;
    negative_counts(v, &mut found);
    found
}

fn negative_counts(v: &Json, found: &mut Option<String>) {
    match v {
        Json::Object(o) => {
            if let Some(f) = o.get("Function")
                && let Some(name) = f.get("name").and_then(ident_name)
                && matches!(name.as_str(), "REPEAT" | "LPAD" | "RPAD")
                && has_negative_number(f.get("args").unwrap_or(&Json::Null))
            {
                *found = Some(format!("{name} needs a count of 0 or more"));
                return;
            }
            o.values().for_each(|x| negative_counts(x, found));
        }
        Json::Array(a) => a.iter().for_each(|x| negative_counts(x, found)),
        _ => {}
    }
}

/// Whether `v` holds `-<number>` (a unary minus applied to a number literal).
fn has_negative_number(v: &Json) -> bool {
    match v {
        Json::Object(o) => {
            if let Some(u) = o.get("UnaryOp")
                && u.get("op").and_then(Json::as_str) == Some("Minus")
                && u.get("expr")
                    .and_then(|e| e.get("Value"))
                    .and_then(|x| x.get("Number"))
                    .is_some()
            {
                return true;
            }
            o.values().any(has_negative_number)
        }
        Json::Array(a) => a.iter().any(has_negative_number),
        _ => false,
    }
}

fn ident_name(v: &Json) -> Option<String> {
    // `ObjectName` is an array of `Ident`s: {"value": "REPEAT", …}.
    let last = v.as_array()?.last()?;
    Some(last.get("value")?.as_str()?.to_ascii_uppercase())
}

/// (product of the numeric literals, longest string literal) under `v`.
fn literals(v: &Json, prod: &mut f64, longest: &mut f64) {
    match v {
        Json::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("Number", Json::Array(a)) => {
                        let n = match a.first() {
                            Some(Json::String(s)) => s.parse::<f64>().unwrap_or(1.0),
                            Some(Json::Number(n)) => n.as_f64().unwrap_or(1.0),
                            _ => 1.0,
                        };
                        *prod *= n.abs().max(1.0);
                    }
                    (
                        "SingleQuotedString" | "DoubleQuotedString" | "NationalStringLiteral",
                        Json::String(s),
                    ) => {
                        *longest = longest.max(s.len() as f64);
                    }
                    _ => literals(x, prod, longest),
                }
            }
        }
        Json::Array(a) => a.iter().for_each(|x| literals(x, prod, longest)),
        _ => {}
    }
}

/// Rows a `FROM` source yields by itself (1 for tables and unknowns).
fn source_rows(rel: &Json) -> f64 {
    if let Some(t) = rel.get("Table") {
        if t.get("name").and_then(ident_name).as_deref() == Some("SERIES") {
            let (mut prod, mut longest) = (1.0, 0.0);
            literals(
                t.get("args").unwrap_or(&Json::Null),
                &mut prod,
                &mut longest,
            );
            return prod;
        }
        return 1.0;
    }
    if let Some(d) = rel.get("Derived")
        && let Some(rows) = d
            .get("subquery")
            .and_then(|q| q.get("body"))
            .and_then(|b| b.get("Values"))
            .and_then(|v| v.get("rows"))
            .and_then(Json::as_array)
    {
        return rows.len().max(1) as f64;
    }
    1.0
}

fn walk(v: &Json, total: &mut f64) {
    match v {
        Json::Object(o) => {
            if let Some(f) = o.get("Function")
                && let Some(name) = f.get("name").and_then(ident_name)
                && matches!(name.as_str(), "REPEAT" | "LPAD" | "RPAD")
            {
                let (mut prod, mut longest) = (1.0, 0.0);
                literals(
                    f.get("args").unwrap_or(&Json::Null),
                    &mut prod,
                    &mut longest,
                );
                *total += prod * longest.max(1.0);
            }
            if let Some(Json::Array(from)) = o.get("from") {
                for twj in from {
                    let mut rows = twj.get("relation").map_or(1.0, source_rows);
                    if let Some(Json::Array(joins)) = twj.get("joins") {
                        for j in joins {
                            rows *= j.get("relation").map_or(1.0, source_rows);
                        }
                    }
                    if rows > 1.0 {
                        *total += rows * ROW_BYTES;
                    }
                }
            }
            o.values().for_each(|x| walk(x, total));
        }
        Json::Array(a) => a.iter().for_each(|x| walk(x, total)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(sql: &str) -> u64 {
        let mut v = gluesql_core::parse_sql::parse(sql).unwrap();
        let mut s = v.remove(0);
        super::super::rewrite::rewrite(&mut s);
        estimate_json(&serde_json::to_value(&s).unwrap())
    }

    fn refuse(s: &Statement) -> Option<String> {
        refuse_json(&serde_json::to_value(s).unwrap())
    }

    #[test]
    fn negative_counts_are_refused() {
        let one = |sql: &str| gluesql_core::parse_sql::parse(sql).unwrap().remove(0);
        assert!(refuse(&one("SELECT REPEAT('a', -1)")).is_some());
        assert!(refuse(&one("SELECT LPAD('a', -5, 'x') AS p")).is_some());
        assert!(refuse(&one("SELECT REPEAT('a', 3), 1 - 2")).is_none());
    }

    #[test]
    fn literals_bound_the_estimate() {
        assert_eq!(est("SELECT 1"), 0);
        assert!((1000..2000).contains(&est("SELECT REPEAT('A', 1000)")));
        assert!(est("SELECT REPEAT('AB', 100000000000)") >= 200_000_000_000);
        assert!(est("SELECT REPEAT(REPEAT('A', 100000), 100000)") >= 10_000_000_000);
        assert!(est("SELECT LPAD('x', 5000000)") >= 5_000_000);
        assert!(est("SELECT * FROM SERIES(1000000) a CROSS JOIN SERIES(1000000) b") >= 1e12 as u64);
        assert!(
            est("SELECT * FROM (VALUES (1),(2),(3)) a CROSS JOIN (VALUES (1),(2)) b") >= 6 * 64
        );
        assert!(est("SELECT * FROM t a CROSS JOIN t b") < 64);
    }
}
