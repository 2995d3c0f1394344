//! `EXPLAIN`: GlueSQL has none, so the plan is written out here — a readable
//! summary from the statement (scans with their heap sizes, joins, filter,
//! grouping, order, limit), then GlueSQL's planned statement as a tree.

use gluesql_core::plan::StatementPlan;
use gluesql_core::sqlparser::ast::{JoinOperator, Query, Select, SetExpr, Statement, TableFactor};

/// Heap figures of a table: (pages, rows).
pub type Sizes<'a> = &'a dyn Fn(&str) -> Option<(usize, usize)>;

/// The plan of `stmt` (already rewritten) as lines of text.
pub fn lines(stmt: &Statement, plan: &StatementPlan, sizes: Sizes<'_>) -> Vec<String> {
    let mut out = Vec::new();
    match stmt {
        Statement::Query(q) => query(q, 0, sizes, &mut out),
        Statement::Insert(i) => {
            out.push(format!("Insert into {}", i.table_name));
            if let Some(q) = &i.source {
                query(q, 1, sizes, &mut out);
            }
        }
        Statement::Update {
            table, selection, ..
        } => {
            out.push(format!("Update {}", table.relation));
            scan(&table.relation, 1, sizes, &mut out);
            if let Some(w) = selection {
                out.push(format!("  Filter: {w}"));
            }
        }
        Statement::Delete(d) => {
            out.push("Delete".to_string());
            let (gluesql_core::sqlparser::ast::FromTable::WithFromKeyword(f)
            | gluesql_core::sqlparser::ast::FromTable::WithoutKeyword(f)) = &d.from;
            for t in f {
                scan(&t.relation, 1, sizes, &mut out);
            }
            if let Some(w) = &d.selection {
                out.push(format!("  Filter: {w}"));
            }
        }
        other => out.push(format!("{} (no scan)", super::rewrite::name(other))),
    }
    out.push("GlueSQL plan:".to_string());
    out.extend(format!("{plan:#?}").lines().map(|l| format!("  {l}")));
    out
}

fn pad(depth: usize) -> String {
    "  ".repeat(depth)
}

fn query(q: &Query, depth: usize, sizes: Sizes<'_>, out: &mut Vec<String>) {
    set_expr(&q.body, depth, sizes, out);
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

fn set_expr(e: &SetExpr, depth: usize, sizes: Sizes<'_>, out: &mut Vec<String>) {
    match e {
        SetExpr::Select(s) => select(s, depth, sizes, out),
        SetExpr::Query(q) => query(q, depth, sizes, out),
        SetExpr::Values(v) => out.push(format!("{}Values: {} row(s)", pad(depth), v.rows.len())),
        SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } => {
            out.push(format!("{}{op} {set_quantifier}", pad(depth)));
            set_expr(left, depth + 1, sizes, out);
            set_expr(right, depth + 1, sizes, out);
        }
        other => out.push(format!("{}{other}", pad(depth))),
    }
}

fn scan(f: &TableFactor, depth: usize, sizes: Sizes<'_>, out: &mut Vec<String>) {
    match f {
        TableFactor::Table { name, .. } => {
            let n = name.to_string();
            match sizes(&n) {
                Some((pages, rows)) => out.push(format!(
                    "{}Seq scan on {n} (heap: {pages} page(s), {rows} row(s))",
                    pad(depth)
                )),
                None => out.push(format!("{}Scan of {n}", pad(depth))),
            }
        }
        TableFactor::Derived { subquery, .. } => {
            out.push(format!("{}Subquery", pad(depth)));
            query(subquery, depth + 1, sizes, out);
        }
        other => out.push(format!("{}Scan of {other}", pad(depth))),
    }
}

fn select(s: &Select, depth: usize, sizes: Sizes<'_>, out: &mut Vec<String>) {
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
            scan(&t.relation, d, sizes, out);
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
                out.push(format!("{}{how}", pad(d)));
                scan(&j.relation, d + 1, sizes, out);
            }
        }
    }
}
