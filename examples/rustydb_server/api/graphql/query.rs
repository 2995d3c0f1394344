//! `QueryRoot`: schemas, tables, rows (lists, connections, aggregates,
//! search), SQL for the admin role, transactions and memory on live state.

use async_graphql::connection::{Connection, Edge, query};
use async_graphql::{Context, ID, Json, Object};
use serde_json::Value;

use super::*;
use crate::server::api::auth::Role;
use crate::server::sql::engine::{ColumnDef, TableInfo};
use crate::server::sql::exec;
use crate::server::sql::text::{self as sql, AggregateInput, OrderByInput, WhereClause};

/// Queries.
#[derive(Debug, Default)]
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// Schemas of the database.
    async fn schemas(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DatabaseSchema>> {
        who(ctx)?;
        let e = app(ctx).engine.clone();
        Ok(e.schemas()
            .into_iter()
            .map(|name| DatabaseSchema { name })
            .collect())
    }

    /// One schema.
    async fn schema(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<DatabaseSchema>> {
        who(ctx)?;
        let e = app(ctx).engine.clone();
        Ok(e.schemas()
            .into_iter()
            .find(|s| *s == name)
            .map(|name| DatabaseSchema { name }))
    }

    /// Tables, paginated.
    async fn tables(
        &self,
        ctx: &Context<'_>,
        schema: Option<String>,
        limit: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<TableType>> {
        who(ctx)?;
        let (l, o) = check_window(limit, offset)?;
        let mut v: Vec<TableInfo> = catalog(ctx)
            .await?
            .into_iter()
            .filter(|t| schema.as_ref().is_none_or(|s| *s == t.schema))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v.into_iter()
            .skip(o.unwrap_or(0) as usize)
            .take(l.unwrap_or(u64::MAX) as usize)
            .map(TableType)
            .collect())
    }

    /// One table.
    async fn table(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<TableType>> {
        who(ctx)?;
        sql::ident(&name).map_err(bad_input)?;
        let e = app(ctx).engine.clone();
        exec::blocking(move || e.table(&name))
            .await
            .map(|t| t.map(TableType))
            .map_err(|e| gerr(e.code(), e))
    }

    /// Rows of a table: filter, order, window.
    #[allow(clippy::too_many_arguments)]
    async fn query_table(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: Option<WhereClause>,
        order_by: Option<Vec<OrderByInput>>,
        limit: Option<i32>,
        offset: Option<i32>,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<QueryResult> {
        who(ctx)?;
        let (l, o) = check_window(limit, offset)?;
        let q =
            sql::select(&table, filter.as_ref(), order_by.as_deref(), l, o).map_err(bad_input)?;
        Ok(run(ctx, q, transaction_id.as_ref()).await?.into())
    }

    /// Several tables at once (same filter and window for each).
    async fn query_tables(
        &self,
        ctx: &Context<'_>,
        tables: Vec<String>,
        #[graphql(name = "where")] filter: Option<WhereClause>,
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<QueryResult>> {
        who(ctx)?;
        if tables.is_empty() || tables.len() > 16 {
            return Err(bad_input("give 1 to 16 tables"));
        }
        let (l, _) = check_window(limit, None)?;
        let mut out = Vec::with_capacity(tables.len());
        for t in &tables {
            let q = sql::select(t, filter.as_ref(), None, l, None).map_err(bad_input)?;
            out.push(run(ctx, q, None).await?.into());
        }
        Ok(out)
    }

    /// Rows of a table as a Relay connection (cursors are row offsets).
    #[allow(clippy::too_many_arguments)]
    async fn query_table_connection(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: Option<WhereClause>,
        order_by: Option<Vec<OrderByInput>>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> async_graphql::Result<Connection<usize, RowType, RowConnectionFields>> {
        who(ctx)?;
        if first.is_some_and(|f| f > 10_000) || last.is_some_and(|l| l > 10_000) {
            return Err(bad_input("first/last must be at most 10000"));
        }
        query(
            after,
            before,
            first,
            last,
            |after, before, first, last| async move {
                let cq = sql::count(&table, filter.as_ref()).map_err(bad_input)?;
                let c = run(ctx, cq, None).await?;
                let total = c
                    .output
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as usize;
                let mut start = after.map_or(0, |a| a + 1);
                let mut end = before.unwrap_or(total).min(total);
                if let Some(f) = first {
                    end = end.min(start + f);
                }
                if let Some(l) = last {
                    start = start.max(end.saturating_sub(l));
                }
                let mut conn = Connection::with_additional_fields(
                    start > 0,
                    end < total,
                    RowConnectionFields {
                        total_count: BigInt(total as i64),
                    },
                );
                if end > start {
                    let q = sql::select(
                        &table,
                        filter.as_ref(),
                        order_by.as_deref(),
                        Some((end - start) as u64),
                        Some(start as u64),
                    )
                    .map_err(bad_input)?;
                    let r = run(ctx, q, None).await?;
                    for (i, row) in rows_as_objects(&r.output).into_iter().enumerate() {
                        let id = row
                            .get("id")
                            .map(|v| ID(v.to_string().trim_matches('"').to_string()));
                        conn.edges.push(Edge::new(
                            start + i,
                            RowType {
                                id,
                                data: Json(row),
                            },
                        ));
                    }
                }
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }

    /// One row by key.
    async fn row(
        &self,
        ctx: &Context<'_>,
        table: String,
        id: ID,
        #[graphql(default_with = "String::from(\"id\")")] id_column: String,
    ) -> async_graphql::Result<Option<RowType>> {
        who(ctx)?;
        let w = sql::eq_filter(&id_column, id.as_str());
        let q = sql::select(&table, Some(&w), None, Some(1), None).map_err(bad_input)?;
        let r = run(ctx, q, None).await?;
        Ok(rows_as_objects(&r.output)
            .into_iter()
            .next()
            .map(|data| RowType {
                id: Some(id.clone()),
                data: Json(data),
            }))
    }

    /// Aggregates over a table.
    async fn aggregate(
        &self,
        ctx: &Context<'_>,
        table: String,
        aggregates: Vec<AggregateInput>,
        #[graphql(name = "where")] filter: Option<WhereClause>,
        group_by: Option<Vec<String>>,
    ) -> async_graphql::Result<AggregateResult> {
        who(ctx)?;
        let q = sql::aggregate(&table, &aggregates, filter.as_ref(), group_by.as_deref())
            .map_err(bad_input)?;
        let r = run(ctx, q, None).await?;
        let rows = rows_as_objects(&r.output);
        Ok(AggregateResult {
            values: Json(rows.first().cloned().unwrap_or(Value::Null)),
            groups: Json(rows),
        })
    }

    /// Rows in a table (matching a filter).
    async fn count(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: Option<WhereClause>,
    ) -> async_graphql::Result<BigInt> {
        who(ctx)?;
        let q = sql::count(&table, filter.as_ref()).map_err(bad_input)?;
        let r = run(ctx, q, None).await?;
        let n = r
            .output
            .rows
            .first()
            .and_then(|row| row.first())
            .and_then(Value::as_i64)
            .ok_or_else(|| gerr("INTERNAL", "the engine returned no count"))?;
        Ok(BigInt(n))
    }

    /// Runs one SQL statement (admin only).
    async fn execute_sql(
        &self,
        ctx: &Context<'_>,
        sql: String,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<Json<Value>> {
        require(ctx, Role::Admin, "executeSql")?;
        if sql.trim().is_empty() {
            return Err(bad_input("sql is empty"));
        }
        let r = run(ctx, sql, transaction_id.as_ref()).await?;
        Ok(Json(serde_json::to_value(&r).unwrap_or(Value::Null)))
    }

    /// Rows whose text columns contain `query` (case-sensitive LIKE).
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        tables: Option<Vec<String>>,
        limit: Option<i32>,
    ) -> async_graphql::Result<SearchResult> {
        who(ctx)?;
        if query.is_empty() || query.len() > 256 {
            return Err(bad_input("query must be 1 to 256 characters"));
        }
        let (l, _) = check_window(limit.or(Some(100)), None)?;
        let cat = catalog(ctx).await?;
        let pattern = format!("%{}%", query.replace(['%', '_'], ""));
        let mut hits = Vec::new();
        let mut total = 0;
        for t in cat.iter().filter(|t| {
            tables
                .as_ref()
                .is_none_or(|v| v.iter().any(|n| n.eq_ignore_ascii_case(&t.name)))
        }) {
            let text_cols: Vec<&ColumnDef> = t
                .columns
                .iter()
                .filter(|c| {
                    let u = c.data_type.to_ascii_uppercase();
                    u.starts_with("TEXT")
                        || u.starts_with("VARCHAR")
                        || u.starts_with("CHAR")
                        || u.starts_with("STRING")
                })
                .collect();
            if text_cols.is_empty() {
                continue;
            }
            let or: Vec<WhereClause> = text_cols
                .iter()
                .map(|c| WhereClause {
                    and: None,
                    or: None,
                    not: None,
                    condition: Some(sql::FilterCondition {
                        column: c.name.clone(),
                        op: sql::FilterOp::Like,
                        value: Some(Json(Value::String(pattern.clone()))),
                    }),
                })
                .collect();
            let w = WhereClause {
                and: None,
                or: Some(or),
                not: None,
                condition: None,
            };
            let q = sql::select(&t.name, Some(&w), None, l, None).map_err(bad_input)?;
            let r = run(ctx, q, None).await?;
            let rows = rows_as_objects(&r.output);
            if !rows.is_empty() {
                total += rows.len() as i32;
                hits.push(SearchHit {
                    table: t.name.clone(),
                    count: rows.len() as i32,
                    rows: Json(rows),
                });
            }
        }
        Ok(SearchResult {
            query,
            hits,
            total_count: total,
        })
    }

    /// The plan of a query on `table` (or of `sql`), as text.
    async fn explain(
        &self,
        ctx: &Context<'_>,
        table: Option<String>,
        sql: Option<String>,
        #[graphql(name = "where")] filter: Option<WhereClause>,
    ) -> async_graphql::Result<String> {
        who(ctx)?;
        let target = match (table, sql) {
            (Some(t), None) => {
                sql::select(&t, filter.as_ref(), None, None, None).map_err(bad_input)?
            }
            (None, Some(s)) if !s.trim().is_empty() => s,
            _ => return Err(bad_input("give either `table` or `sql`")),
        };
        let r = run(ctx, format!("EXPLAIN {target}"), None).await?;
        let lines: Vec<String> = r
            .output
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        Ok(lines.join("\n"))
    }

    /// `q1 UNION [ALL] q2 …` of SELECT statements.
    async fn execute_union(
        &self,
        ctx: &Context<'_>,
        queries: Vec<String>,
        #[graphql(default)] all: bool,
    ) -> async_graphql::Result<Json<Value>> {
        who(ctx)?;
        if queries.len() < 2 || queries.len() > 16 {
            return Err(bad_input("give 2 to 16 queries"));
        }
        for q in &queries {
            let head = q.trim_start().to_ascii_uppercase();
            if !(head.starts_with("SELECT") || head.starts_with("VALUES")) || q.contains(';') {
                return Err(bad_input(
                    "each query must be a single SELECT or VALUES statement",
                ));
            }
        }
        let joiner = if all { " UNION ALL " } else { " UNION " };
        let text = queries
            .iter()
            .map(|q| q.trim())
            .collect::<Vec<_>>()
            .join(joiner);
        let r = run(ctx, text, None).await?;
        Ok(Json(serde_json::to_value(&r).unwrap_or(Value::Null)))
    }

    /// The memory manager's snapshot (live figures).
    async fn memory_stats(&self, ctx: &Context<'_>) -> async_graphql::Result<MemoryStatsInfo> {
        who(ctx)?;
        let s = app(ctx).mm.stats();
        Ok(MemoryStatsInfo {
            rss_bytes: BigInt(s.rss as i64),
            mapped_bytes: BigInt(s.mapped as i64),
            in_use_bytes: BigInt(s.in_use as i64),
            fragmentation_ratio: s.fragmentation,
            pressure_level: s.pressure.level.as_str().into(),
            budget_bytes: BigInt(s.pressure.budget as i64),
            contexts: s
                .contexts
                .iter()
                .map(|c| MemoryContextInfo {
                    id: ID(c.id.to_string()),
                    name: c.name.clone(),
                    parent_id: c.parent.map(|p| ID(p.to_string())),
                    used_bytes: BigInt(c.used as i64),
                    reserved_bytes: BigInt(c.reserved as i64),
                    peak_bytes: BigInt(c.peak as i64),
                    limit_bytes: c.limit.map(|l| BigInt(l as i64)),
                })
                .collect(),
        })
    }

    /// Open transactions.
    async fn transactions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TransactionInfo>> {
        who(ctx)?;
        Ok(app(ctx).txns.list().into_iter().map(Into::into).collect())
    }
}
