//! `EXPLAIN`: GlueSQL has none, so the plan is written out here — a readable
//! summary from the statement (scans with their heap sizes, joins, filter,
//! grouping, order, limit), then GlueSQL's planned statement as a tree.

use std::collections::HashMap;

use gluesql_core::plan::StatementPlan;
use gluesql_core::sqlparser::ast::{JoinOperator, Query, Select, SetExpr, Statement, TableFactor};
use serde_json::Value as Json;

/// Heap figures of a table: (pages, rows).
pub type Sizes<'a> = &'a dyn Fn(&str) -> Option<(usize, usize)>;

/// What the planner chose: the access path of each table and the join
/// strategies in order, read from the planned statement.
#[derive(Debug, Default)]
struct Choices {
    access: HashMap<String, String>,
    joins: Vec<String>,
}

fn choices(plan: &StatementPlan) -> Choices {
    fn walk(v: &Json, c: &mut Choices) {
        match v {
            Json::Object(o) => {
                if let (Some(Json::String(name)), Some(access)) = (o.get("name"), o.get("access")) {
                    let how = match access {
                        Json::String(s) if s == "FullScan" => "Seq scan",
                        Json::Object(a) if a.contains_key("PrimaryKey") => "Primary key lookup",
                        Json::Object(a) if a.contains_key("Index") => "Index scan",
                        _ => "Scan",
                    };
                    c.access.entry(name.clone()).or_insert_with(|| how.into());
                }
                for (k, v) in o {
                    match k.as_str() {
                        "HashJoin" | "Hash" => c.joins.push("hash join".into()),
                        "NestedLoopJoin" | "NestedLoop" => c.joins.push("nested loop".into()),
                        _ => {}
                    }
                    walk(v, c);
                }
            }
            Json::Array(a) => a.iter().for_each(|x| walk(x, c)),
            _ => {}
        }
    }
    let mut c = Choices::default();
    if let Ok(v) = serde_json::to_value(plan) {
        walk(&v, &mut c);
    }
    c
}

/// The plan of `stmt` (already rewritten) as lines of text.
struct Cx<'a> {
    sizes: Sizes<'a>,
    ch: Choices,
    join: std::cell::Cell<usize>,
}

pub fn lines(stmt: &Statement, plan: &StatementPlan, sizes: Sizes<'_>) -> Vec<String> {
    let cx = Cx {
        sizes,
        ch: choices(plan),
        join: std::cell::Cell::new(0),
    };
    let cx = &cx;
    let mut out = Vec::new();
    match stmt {
        Statement::Query(q) => query(q, 0, cx, &mut out),
        Statement::Insert(i) => {
            out.push(format!("Insert into {}", i.table_name));
            if let Some(q) = &i.source {
                query(q, 1, cx, &mut out);
            }
        }
        Statement::Update {
            table, selection, ..
        } => {
            out.push(format!("Update {}", table.relation));
            scan(&table.relation, 1, cx, &mut out);
            if let Some(w) = selection {
                out.push(format!("  Filter: {w}"));
            }
        }
        Statement::Delete(d) => {
            out.push("Delete".to_string());
            let (gluesql_core::sqlparser::ast::FromTable::WithFromKeyword(f)
            | gluesql_core::sqlparser::ast::FromTable::WithoutKeyword(f)) = &d.from;
            for t in f {
                scan(&t.relation, 1, cx, &mut out);
            }
            if let Some(w) = &d.selection {
                out.push(format!("  Filter: {w}"));
            }
        }
        other => out.push(format!(
            "{} (no scan)",
            crate::server::sql::glue::rewrite::name(other)
        )),
    }
    out.push("GlueSQL plan:".to_string());
    out.extend(format!("{plan:#?}").lines().map(|l| format!("  {l}")));
    out
}

fn pad(depth: usize) -> String {
    "  ".repeat(depth)
}

fn query(q: &Query, depth: usize, cx: &Cx<'_>, out: &mut Vec<String>) {
    set_expr(&q.body, depth, cx, out);
    if let Some(o) = &q.order_by {
        let keys: Vec<String> = o.exprs.iter().map(ToString::to_string).collect();
        out.push(format!("{}Sort: {}", pad(depth), keys.join(", ")));
    }
    if let Some(l) = &q.limit {
        out.push(format!("{}Limit: {l}", pad(depth)));
    }
    if let Some(o) = &q.offset {
        out.push(format!("{}Offset: {}", pad(depth), o.value));
    }
}

fn set_expr(e: &SetExpr, depth: usize, cx: &Cx<'_>, out: &mut Vec<String>) {
    match e {
        SetExpr::Select(s) => select(s, depth, cx, out),
        SetExpr::Query(q) => query(q, depth, cx, out),
        SetExpr::Values(v) => out.push(format!("{}Values: {} row(s)", pad(depth), v.rows.len())),
        SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } => {
            out.push(format!("{}{op} {set_quantifier}", pad(depth)));
            set_expr(left, depth + 1, cx, out);
            set_expr(right, depth + 1, cx, out);
        }
        other => out.push(format!("{}{other}", pad(depth))),
    }
}

fn scan(f: &TableFactor, depth: usize, cx: &Cx<'_>, out: &mut Vec<String>) {
    match f {
        TableFactor::Table { name, .. } => {
            let n = name.to_string();
            let how = cx.ch.access.get(&n).map_or("Scan", String::as_str);
            match (cx.sizes)(&n) {
                Some((pages, rows)) => out.push(format!(
                    "{}{how} on {n} (heap: {pages} page(s), {rows} row(s))",
                    pad(depth)
                )),
                None => out.push(format!("{}Scan of {n}", pad(depth))),
            }
        }
        TableFactor::Derived { subquery, .. } => {
            out.push(format!("{}Subquery", pad(depth)));
            query(subquery, depth + 1, cx, out);
        }
        other => out.push(format!("{}Scan of {other}", pad(depth))),
    }
}

fn select(s: &Select, depth: usize, cx: &Cx<'_>, out: &mut Vec<String>) {
    let items: Vec<String> = s.projection.iter().map(ToString::to_string).collect();
    out.push(format!("{}Project: {}", pad(depth), items.join(", ")));
    let d = depth + 1;
    if let Some(g) = &s.having {
        out.push(format!("{}Having: {g}", pad(d)));
    }
    if let gluesql_core::sqlparser::ast::GroupByExpr::Expressions(e, _) = &s.group_by
        && !e.is_empty()
    {
        let keys: Vec<String> = e.iter().map(ToString::to_string).collect();
        out.push(format!("{}Group by: {}", pad(d), keys.join(", ")));
    }
    if let Some(w) = &s.selection {
        out.push(format!("{}Filter: {w}", pad(d)));
    }
    match s.from.first() {
        None => out.push(format!("{}Single row (no FROM)", pad(d))),
        Some(t) => {
            scan(&t.relation, d, cx, out);
            for j in &t.joins {
                let how = match &j.join_operator {
                    JoinOperator::Inner(c) | JoinOperator::LeftOuter(c) => {
                        let kind = if matches!(j.join_operator, JoinOperator::Inner(_)) {
                            "Inner"
                        } else {
                            "Left outer"
                        };
                        match c {
                            gluesql_core::sqlparser::ast::JoinConstraint::On(e) => {
                                format!("{kind} join on {e}")
                            }
                            _ => format!("{kind} join, no constraint (cross product)"),
                        }
                    }
                    other => format!("{other:?}"),
                };
                let i = cx.join.get();
                cx.join.set(i + 1);
                match cx.ch.joins.get(i) {
                    Some(strategy) => out.push(format!("{}{how} ({strategy})", pad(d))),
                    None => out.push(format!("{}{how}", pad(d))),
                }
                scan(&j.relation, d + 1, cx, out);
            }
        }
    }
}
