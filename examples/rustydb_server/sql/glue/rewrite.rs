//! What happens to a parsed statement before GlueSQL translates it: joins
//! GlueSQL does not know are rewritten (`CROSS JOIN` and `FROM a, b` become
//! inner joins without a constraint), and each statement is classified (read,
//! DML, DDL, transaction control) for the caller's mode. In a SELECT without
//! FROM, double-quoted names are read as strings (no column is in scope).

use gluesql_core::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, JoinConstraint, JoinOperator, Query,
    Select, SelectItem, SetExpr, Statement, TableFactor, TableWithJoins, Value,
};

/// What a statement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reads only.
    Read,
    /// Changes rows.
    Dml,
    /// Changes the catalog.
    Ddl,
    /// `BEGIN`, `COMMIT`, `ROLLBACK`.
    TxnControl,
}

/// Classifies a statement.
pub fn kind(s: &Statement) -> Kind {
    match s {
        Statement::Query(_)
        | Statement::Explain { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowFunctions { .. } => Kind::Read,
        Statement::Insert(_) | Statement::Update { .. } | Statement::Delete(_) => Kind::Dml,
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. } => Kind::TxnControl,
        _ => Kind::Ddl,
    }
}

/// The statement's name for results (`SELECT`, `INSERT`, `CREATE TABLE`, …).
pub fn name(s: &Statement) -> String {
    let text = s.to_string();
    let mut words = text.split_whitespace().map(str::to_ascii_uppercase);
    let first = words.next().unwrap_or_default();
    match first.as_str() {
        "CREATE" | "DROP" | "ALTER" => {
            let second = words.next().unwrap_or_default();
            let second = if second == "UNIQUE" {
                words.next().unwrap_or_default()
            } else {
                second
            };
            format!("{first} {second}")
        }
        "WITH" | "VALUES" | "(" => "SELECT".to_string(),
        _ => first,
    }
}

/// Rewrites the joins GlueSQL cannot translate, everywhere in `s`.
pub fn rewrite(s: &mut Statement) {
    match s {
        Statement::Query(q) => {
            if let SetExpr::Select(sel) = q.body.as_mut()
                && sel.from.is_empty()
            {
                // No table is in scope, so a double-quoted name cannot be a
                // column: read it as MySQL does without ANSI_QUOTES, a string
                // (the seed's `SELECT REPEAT("A", 1000)`).
                for item in &mut sel.projection {
                    match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            quoted_names_to_strings(e)
                        }
                        _ => {}
                    }
                }
            }
            query(q)
        }
        Statement::Explain { statement, .. } => rewrite(statement),
        Statement::Insert(i) => {
            if let Some(q) = i.source.as_mut() {
                query(q);
            }
        }
        Statement::CreateTable(c) => {
            if let Some(q) = c.query.as_mut() {
                query(q);
            }
        }
        _ => {}
    }
}

/// Rewrites a query.
pub fn query(q: &mut Query) {
    set_expr(&mut q.body);
}

fn set_expr(e: &mut SetExpr) {
    match e {
        SetExpr::Select(s) => select(s),
        SetExpr::Query(q) => query(q),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr(left);
            set_expr(right);
        }
        _ => {}
    }
}

/// Turns `"name"` into `'name'` inside `e` (through calls, operators,
/// parentheses and casts — the shapes a FROM-less projection takes).
fn quoted_names_to_strings(e: &mut Expr) {
    match e {
        Expr::Identifier(id) if id.quote_style == Some('"') => {
            *e = Expr::Value(Value::SingleQuotedString(std::mem::take(&mut id.value)));
        }
        Expr::Function(f) => {
            if let FunctionArguments::List(list) = &mut f.args {
                for a in &mut list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x))
                        | FunctionArg::Named {
                            arg: FunctionArgExpr::Expr(x),
                            ..
                        } => quoted_names_to_strings(x),
                        _ => {}
                    }
                }
            }
        }
        Expr::BinaryOp { left, right, .. } => {
            quoted_names_to_strings(left);
            quoted_names_to_strings(right);
        }
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => {
            quoted_names_to_strings(expr)
        }
        _ => {}
    }
}

fn factor(f: &mut TableFactor) {
    if let TableFactor::Derived { subquery, .. } = f {
        query(subquery);
    }
}

fn select(s: &mut Select) {
    // `FROM a, b` is `a CROSS JOIN b`.
    if s.from.len() > 1 {
        let mut rest: Vec<TableWithJoins> = s.from.drain(1..).collect();
        if let Some(first) = s.from.first_mut() {
            for t in rest.drain(..) {
                first.joins.push(gluesql_core::sqlparser::ast::Join {
                    relation: t.relation,
                    global: false,
                    join_operator: JoinOperator::CrossJoin,
                });
                first.joins.extend(t.joins);
            }
        }
    }
    for twj in &mut s.from {
        factor(&mut twj.relation);
        for j in &mut twj.joins {
            factor(&mut j.relation);
            if matches!(j.join_operator, JoinOperator::CrossJoin) {
                j.join_operator = JoinOperator::Inner(JoinConstraint::None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut v = gluesql_core::parse_sql::parse(sql).unwrap();
        v.remove(0)
    }

    #[test]
    fn double_quoted_names_are_strings_only_without_from() {
        let mut s = one(r#"SELECT REPEAT("A", 3) AS s, "b" || 'c', -("d")"#);
        rewrite(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT REPEAT('A', 3) AS s, 'b' || 'c', -('d')"
        );
        let mut s = one(r#"SELECT "A" FROM t"#);
        rewrite(&mut s);
        assert_eq!(s.to_string(), r#"SELECT "A" FROM t"#);
    }

    #[test]
    fn cross_joins_become_inner_joins() {
        let mut s = one("SELECT * FROM a CROSS JOIN b, c");
        rewrite(&mut s);
        let t = s.to_string();
        assert_eq!(t, "SELECT * FROM a JOIN b JOIN c");
    }

    #[test]
    fn kinds_and_names() {
        assert_eq!(kind(&one("SELECT 1")), Kind::Read);
        assert_eq!(kind(&one("INSERT INTO t VALUES (1)")), Kind::Dml);
        assert_eq!(kind(&one("CREATE TABLE t (a INT)")), Kind::Ddl);
        assert_eq!(kind(&one("BEGIN")), Kind::TxnControl);
        assert_eq!(name(&one("CREATE TABLE t (a INT)")), "CREATE TABLE");
        assert_eq!(name(&one("VALUES (1)")), "SELECT");
    }
}
