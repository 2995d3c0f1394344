//! SQL text built from structured requests (GraphQL filters, REST table
//! specs): identifiers are validated, literals quoted, nesting bounded — so an
//! engine only ever receives SQL, and no request can inject any.

use async_graphql::{Enum, InputObject};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::server::sql::engine::ColumnDef;

/// Deepest nesting of `and`/`or`/`not` accepted.
pub const MAX_WHERE_DEPTH: usize = 8;
/// Most conditions in one filter.
pub const MAX_WHERE_NODES: usize = 64;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum FilterOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE` (string pattern)
    Like,
    /// `IN (…)` (array value)
    In,
    /// `IS NULL` (no value)
    IsNull,
    /// `IS NOT NULL` (no value)
    IsNotNull,
}

/// One condition on a column.
#[derive(Debug, Clone, InputObject, Serialize, Deserialize)]
pub struct FilterCondition {
    /// Column.
    pub column: String,
    /// Comparison.
    pub op: FilterOp,
    /// Operand (a scalar; an array for `IN`; none for the NULL tests).
    pub value: Option<async_graphql::Json<Value>>,
}

/// A filter: a condition, or a combination.
#[derive(Debug, Clone, InputObject, Serialize, Deserialize)]
pub struct WhereClause {
    /// All of these.
    pub and: Option<Vec<WhereClause>>,
    /// Any of these.
    pub or: Option<Vec<WhereClause>>,
    /// Not this.
    pub not: Option<Box<WhereClause>>,
    /// A condition.
    pub condition: Option<FilterCondition>,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize, Default)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum SortDirection {
    /// Ascending.
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// One sort key.
#[derive(Debug, Clone, InputObject, Serialize, Deserialize)]
pub struct OrderByInput {
    /// Column.
    pub column: String,
    /// Direction (ascending by default).
    #[graphql(default)]
    pub direction: SortDirection,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum AggregateFunction {
    /// `COUNT`
    Count,
    /// `SUM`
    Sum,
    /// `AVG`
    Avg,
    /// `MIN`
    Min,
    /// `MAX`
    Max,
}

impl AggregateFunction {
    fn sql(self) -> &'static str {
        match self {
            AggregateFunction::Count => "COUNT",
            AggregateFunction::Sum => "SUM",
            AggregateFunction::Avg => "AVG",
            AggregateFunction::Min => "MIN",
            AggregateFunction::Max => "MAX",
        }
    }
}

/// One aggregate to compute.
#[derive(Debug, Clone, InputObject, Serialize, Deserialize)]
pub struct AggregateInput {
    /// Function.
    pub function: AggregateFunction,
    /// Column (`*` for COUNT(*); default `*`).
    pub column: Option<String>,
    /// Result name (default `function_column`).
    pub alias: Option<String>,
}

/// Checks an identifier: a letter or `_`, then letters, digits, `_`; ≤ 63 characters.
pub fn ident(s: &str) -> Result<&str, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s)
    } else {
        Err(format!(
            "`{}` is not a valid identifier (a letter or _, then letters, digits or _, at most 63)",
            s.chars().take(80).collect::<String>()
        ))
    }
}

/// A SQL literal for a JSON scalar.
pub fn literal(v: &Value) -> Result<String, String> {
    match v {
        Value::Null => Ok("NULL".into()),
        Value::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.into()),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => {
            if s.contains('\0') {
                return Err("strings may not contain NUL".into());
            }
            Ok(format!("'{}'", s.replace('\'', "''")))
        }
        Value::Array(_) | Value::Object(_) => {
            Err("a value must be a scalar (string, number, boolean or null)".into())
        }
    }
}

fn cond_sql(c: &FilterCondition) -> Result<String, String> {
    let col = ident(&c.column)?;
    let v = c.value.as_ref().map(|j| &j.0);
    fn need<'v>(v: Option<&'v Value>, c: &FilterCondition) -> Result<&'v Value, String> {
        v.ok_or_else(|| format!("{:?} on `{}` needs a value", c.op, c.column))
    }
    Ok(match c.op {
        FilterOp::IsNull => format!("{col} IS NULL"),
        FilterOp::IsNotNull => format!("{col} IS NOT NULL"),
        FilterOp::In => {
            let Some(Value::Array(items)) = v else {
                return Err(format!("IN on `{col}` needs an array value"));
            };
            if items.is_empty() || items.len() > 1000 {
                return Err("IN takes 1 to 1000 values".into());
            }
            let parts = items.iter().map(literal).collect::<Result<Vec<_>, _>>()?;
            format!("{col} IN ({})", parts.join(", "))
        }
        FilterOp::Like => match need(v, c)? {
            Value::String(_) => format!("{col} LIKE {}", literal(need(v, c)?)?),
            _ => return Err(format!("LIKE on `{col}` needs a string")),
        },
        op => {
            let sym = match op {
                FilterOp::Eq => "=",
                FilterOp::Ne => "<>",
                FilterOp::Lt => "<",
                FilterOp::Le => "<=",
                FilterOp::Gt => ">",
                _ => ">=",
            };
            format!("{col} {sym} {}", literal(need(v, c)?)?)
        }
    })
}

fn where_rec(w: &WhereClause, depth: usize, nodes: &mut usize) -> Result<String, String> {
    if depth > MAX_WHERE_DEPTH {
        return Err(format!("filters nest at most {MAX_WHERE_DEPTH} deep"));
    }
    *nodes += 1;
    if *nodes > MAX_WHERE_NODES {
        return Err(format!("a filter has at most {MAX_WHERE_NODES} parts"));
    }
    let mut parts = Vec::new();
    if let Some(c) = &w.condition {
        parts.push(cond_sql(c)?);
    }
    if let Some(all) = &w.and {
        let v = all
            .iter()
            .map(|x| where_rec(x, depth + 1, nodes))
            .collect::<Result<Vec<_>, _>>()?;
        if !v.is_empty() {
            parts.push(format!("({})", v.join(" AND ")));
        }
    }
    if let Some(any) = &w.or {
        let v = any
            .iter()
            .map(|x| where_rec(x, depth + 1, nodes))
            .collect::<Result<Vec<_>, _>>()?;
        if !v.is_empty() {
            parts.push(format!("({})", v.join(" OR ")));
        }
    }
    if let Some(n) = &w.not {
        parts.push(format!("NOT ({})", where_rec(n, depth + 1, nodes)?));
    }
    if parts.is_empty() {
        return Err("an empty filter: give a condition, and, or or not".into());
    }
    Ok(parts.join(" AND "))
}

/// ` WHERE …` (or nothing).
pub fn where_sql(w: Option<&WhereClause>) -> Result<String, String> {
    match w {
        None => Ok(String::new()),
        Some(w) => Ok(format!(" WHERE {}", where_rec(w, 0, &mut 0)?)),
    }
}

/// ` ORDER BY …` (or nothing).
pub fn order_sql(o: Option<&[OrderByInput]>) -> Result<String, String> {
    let Some(o) = o.filter(|o| !o.is_empty()) else {
        return Ok(String::new());
    };
    if o.len() > 16 {
        return Err("at most 16 sort keys".into());
    }
    let keys = o
        .iter()
        .map(|k| {
            Ok(format!(
                "{} {}",
                ident(&k.column)?,
                if k.direction == SortDirection::Desc {
                    "DESC"
                } else {
                    "ASC"
                }
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(format!(" ORDER BY {}", keys.join(", ")))
}

/// `SELECT * FROM t WHERE … ORDER BY … LIMIT n OFFSET m`.
pub fn select(
    table: &str,
    w: Option<&WhereClause>,
    o: Option<&[OrderByInput]>,
    limit: Option<u64>,
    offset: Option<u64>,
) -> Result<String, String> {
    let mut s = format!(
        "SELECT * FROM {}{}{}",
        ident(table)?,
        where_sql(w)?,
        order_sql(o)?
    );
    if let Some(l) = limit {
        s.push_str(&format!(" LIMIT {l}"));
    }
    if let Some(off) = offset.filter(|&o| o > 0) {
        s.push_str(&format!(" OFFSET {off}"));
    }
    Ok(s)
}

/// `SELECT COUNT(*) AS count FROM t WHERE …`.
pub fn count(table: &str, w: Option<&WhereClause>) -> Result<String, String> {
    Ok(format!(
        "SELECT COUNT(*) AS count FROM {}{}",
        ident(table)?,
        where_sql(w)?
    ))
}

/// `SELECT f(c) AS a, … FROM t WHERE … GROUP BY …`.
pub fn aggregate(
    table: &str,
    aggs: &[AggregateInput],
    w: Option<&WhereClause>,
    group_by: Option<&[String]>,
) -> Result<String, String> {
    if aggs.is_empty() || aggs.len() > 32 {
        return Err("give 1 to 32 aggregates".into());
    }
    let mut cols: Vec<String> = Vec::new();
    let groups = group_by.unwrap_or(&[]);
    for g in groups {
        cols.push(ident(g)?.to_string());
    }
    for a in aggs {
        let col = a.column.as_deref().unwrap_or("*");
        if col == "*" && a.function != AggregateFunction::Count {
            return Err(format!("{} needs a column", a.function.sql()));
        }
        let col = if col == "*" { "*" } else { ident(col)? };
        let alias = match &a.alias {
            Some(x) => ident(x)?.to_string(),
            None => format!(
                "{}_{}",
                a.function.sql().to_ascii_lowercase(),
                if col == "*" { "all" } else { col }
            ),
        };
        cols.push(format!("{}({col}) AS {alias}", a.function.sql()));
    }
    let mut s = format!(
        "SELECT {} FROM {}{}",
        cols.join(", "),
        ident(table)?,
        where_sql(w)?
    );
    if !groups.is_empty() {
        s.push_str(&format!(" GROUP BY {}", groups.join(", ")));
    }
    Ok(s)
}

/// `INSERT INTO t (a, b) VALUES (…), (…)` from JSON objects (same keys each).
pub fn insert(table: &str, rows: &[Value]) -> Result<String, String> {
    let first = rows
        .first()
        .and_then(Value::as_object)
        .ok_or("give at least one row, as a JSON object")?;
    if rows.len() > 10_000 {
        return Err("at most 10000 rows per insert".into());
    }
    let cols: Vec<&String> = first.keys().collect();
    if cols.is_empty() {
        return Err("a row needs at least one column".into());
    }
    for c in &cols {
        ident(c)?;
    }
    let mut tuples = Vec::with_capacity(rows.len());
    for r in rows {
        let o = r.as_object().ok_or("every row must be a JSON object")?;
        if o.len() != cols.len() || !cols.iter().all(|c| o.contains_key(*c)) {
            return Err("every row must have the same columns".into());
        }
        let vals = cols
            .iter()
            .map(|c| literal(&o[*c]))
            .collect::<Result<Vec<_>, _>>()?;
        tuples.push(format!("({})", vals.join(", ")));
    }
    Ok(format!(
        "INSERT INTO {} ({}) VALUES {}",
        ident(table)?,
        cols.iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        tuples.join(", ")
    ))
}

/// `UPDATE t SET a = …, b = … WHERE …`.
pub fn update(table: &str, set: &Value, w: Option<&WhereClause>) -> Result<String, String> {
    let o = set
        .as_object()
        .ok_or("`data` must be a JSON object of column → value")?;
    if o.is_empty() {
        return Err("`data` sets no column".into());
    }
    let sets = o
        .iter()
        .map(|(k, v)| Ok(format!("{} = {}", ident(k)?, literal(v)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(format!(
        "UPDATE {} SET {}{}",
        ident(table)?,
        sets.join(", "),
        where_sql(w)?
    ))
}

/// `DELETE FROM t WHERE …`.
pub fn delete(table: &str, w: Option<&WhereClause>) -> Result<String, String> {
    Ok(format!("DELETE FROM {}{}", ident(table)?, where_sql(w)?))
}

/// `WHERE column = id` as a filter.
pub fn eq_filter(column: &str, id: &str) -> WhereClause {
    let value = match id.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(id.to_string()),
    };
    WhereClause {
        and: None,
        or: None,
        not: None,
        condition: Some(FilterCondition {
            column: column.to_string(),
            op: FilterOp::Eq,
            value: Some(async_graphql::Json(value)),
        }),
    }
}

const TYPES: &[&str] = &[
    "INTEGER",
    "INT",
    "BIGINT",
    "SMALLINT",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FLOAT",
    "REAL",
    "DOUBLE",
    "DECIMAL",
    "NUMERIC",
    "TEXT",
    "VARCHAR",
    "CHAR",
    "STRING",
    "BOOLEAN",
    "BOOL",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "UUID",
    "BYTEA",
    "INTERVAL",
    "MAP",
    "LIST",
];

/// Checks a column type: a known name, optionally with `(n)` or `(p, s)`.
pub fn column_type(t: &str) -> Result<String, String> {
    let u = t.trim().to_ascii_uppercase();
    let (base, args) = match u.split_once('(') {
        Some((b, rest)) => (
            b.trim().to_string(),
            Some(
                rest.strip_suffix(')')
                    .ok_or("unbalanced parenthesis")?
                    .to_string(),
            ),
        ),
        None => (u.clone(), None),
    };
    if !TYPES.contains(&base.as_str()) {
        return Err(format!(
            "unknown column type `{t}`; use one of {}",
            TYPES.join(", ")
        ));
    }
    match args {
        None => Ok(base),
        Some(a) => {
            let nums: Vec<&str> = a.split(',').map(str::trim).collect();
            if nums.len() > 2
                || nums
                    .iter()
                    .any(|n| n.is_empty() || n.len() > 5 || !n.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(format!("bad type arguments in `{t}`"));
            }
            Ok(format!("{base}({})", nums.join(", ")))
        }
    }
}

/// `CREATE TABLE [IF NOT EXISTS] t (a INTEGER NOT NULL PRIMARY KEY, …)`.
pub fn create_table(name: &str, cols: &[ColumnDef], if_not_exists: bool) -> Result<String, String> {
    if cols.is_empty() || cols.len() > 256 {
        return Err("a table has 1 to 256 columns".into());
    }
    let mut seen = std::collections::HashSet::new();
    let mut defs = Vec::new();
    for c in cols {
        let n = ident(&c.name)?;
        if !seen.insert(n.to_ascii_lowercase()) {
            return Err(format!("column `{n}` is given twice"));
        }
        let mut d = format!("{n} {}", column_type(&c.data_type)?);
        if !c.nullable {
            d.push_str(" NOT NULL");
        }
        if c.primary_key {
            d.push_str(" PRIMARY KEY");
        }
        defs.push(d);
    }
    if cols.iter().filter(|c| c.primary_key).count() > 1 {
        return Err("one primary-key column at most".into());
    }
    Ok(format!(
        "CREATE TABLE {}{} ({})",
        if if_not_exists { "IF NOT EXISTS " } else { "" },
        ident(name)?,
        defs.join(", ")
    ))
}

/// `DROP TABLE [IF EXISTS] t`.
pub fn drop_table(name: &str, if_exists: bool) -> Result<String, String> {
    Ok(format!(
        "DROP TABLE {}{}",
        if if_exists { "IF EXISTS " } else { "" },
        ident(name)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(col: &str, op: FilterOp, v: Option<Value>) -> WhereClause {
        WhereClause {
            and: None,
            or: None,
            not: None,
            condition: Some(FilterCondition {
                column: col.into(),
                op,
                value: v.map(async_graphql::Json),
            }),
        }
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(literal(&json!("it's")).unwrap(), "'it''s'");
        assert_eq!(literal(&json!(3.5)).unwrap(), "3.5");
        assert_eq!(literal(&json!(null)).unwrap(), "NULL");
        assert!(literal(&json!([1])).is_err());
        assert!(ident("users; DROP TABLE x").is_err());
        assert!(ident("1abc").is_err());
        assert_eq!(ident("_a1").unwrap(), "_a1");
    }

    #[test]
    fn filters_render() {
        let w = WhereClause {
            and: Some(vec![
                cond("age", FilterOp::Ge, Some(json!(18))),
                cond("name", FilterOp::Like, Some(json!("A%"))),
            ]),
            or: None,
            not: Some(Box::new(cond("id", FilterOp::In, Some(json!([1, 2]))))),
            condition: None,
        };
        assert_eq!(
            select(
                "users",
                Some(&w),
                Some(&[OrderByInput {
                    column: "age".into(),
                    direction: SortDirection::Desc
                }]),
                Some(10),
                Some(5)
            )
            .unwrap(),
            "SELECT * FROM users WHERE (age >= 18 AND name LIKE 'A%') AND NOT (id IN (1, 2)) ORDER BY age DESC LIMIT 10 OFFSET 5"
        );
        assert!(where_sql(Some(&cond("x", FilterOp::Eq, None))).is_err());
        assert!(where_sql(Some(&cond("x'", FilterOp::IsNull, None))).is_err());
        let mut deep = cond("a", FilterOp::IsNull, None);
        for _ in 0..20 {
            deep = WhereClause {
                and: None,
                or: None,
                not: Some(Box::new(deep)),
                condition: None,
            };
        }
        assert!(where_sql(Some(&deep)).is_err());
    }

    #[test]
    fn statements_render() {
        assert_eq!(
            insert(
                "t",
                &[json!({"a": 1, "b": "x"}), json!({"a": 2, "b": null})]
            )
            .unwrap(),
            "INSERT INTO t (a, b) VALUES (1, 'x'), (2, NULL)"
        );
        assert!(insert("t", &[json!({"a": 1}), json!({"b": 2})]).is_err());
        assert_eq!(
            update("t", &json!({"a": 1}), Some(&eq_filter("id", "7"))).unwrap(),
            "UPDATE t SET a = 1 WHERE id = 7"
        );
        assert_eq!(
            aggregate(
                "t",
                &[AggregateInput {
                    function: AggregateFunction::Sum,
                    column: Some("x".into()),
                    alias: None
                }],
                None,
                Some(&["g".into()])
            )
            .unwrap(),
            "SELECT g, SUM(x) AS sum_x FROM t GROUP BY g"
        );
        let cols = vec![
            ColumnDef {
                name: "id".into(),
                data_type: "integer".into(),
                nullable: false,
                primary_key: true,
            },
            ColumnDef {
                name: "name".into(),
                data_type: "varchar(20)".into(),
                nullable: true,
                primary_key: false,
            },
        ];
        assert_eq!(
            create_table("test_memory_table", &cols, false).unwrap(),
            "CREATE TABLE test_memory_table (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(20))"
        );
        assert!(column_type("blob; drop").is_err());
        assert_eq!(drop_table("t", true).unwrap(), "DROP TABLE IF EXISTS t");
    }
}
