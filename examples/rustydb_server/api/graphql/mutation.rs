//! `MutationRoot`: row writes, DDL, transactions.

use async_graphql::{Context, ID, Json, Object};
use serde_json::Value;

use super::*;
use crate::server::api::auth::Role;
use crate::server::sql::engine::{ColumnDef, IsolationLevel};
use crate::server::sql::text::{self as sql, WhereClause};

/// Mutations.
#[derive(Debug, Default)]
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Inserts one row (a JSON object).
    async fn insert_one(
        &self,
        ctx: &Context<'_>,
        table: String,
        data: Json<Value>,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "insertOne")?;
        let q = sql::insert(&table, std::slice::from_ref(&data.0)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Inserts rows (JSON objects with the same keys).
    async fn insert_many(
        &self,
        ctx: &Context<'_>,
        table: String,
        rows: Vec<Json<Value>>,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "insertMany")?;
        let rows: Vec<Value> = rows.into_iter().map(|j| j.0).collect();
        let q = sql::insert(&table, &rows).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Updates the row with key `id`.
    async fn update_one(
        &self,
        ctx: &Context<'_>,
        table: String,
        id: ID,
        data: Json<Value>,
        #[graphql(default_with = "String::from(\"id\")")] id_column: String,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "updateOne")?;
        let w = sql::eq_filter(&id_column, id.as_str());
        let q = sql::update(&table, &data.0, Some(&w)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Updates rows matching a filter (a filter is required).
    async fn update_many(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: WhereClause,
        data: Json<Value>,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "updateMany")?;
        let q = sql::update(&table, &data.0, Some(&filter)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Deletes the row with key `id`.
    async fn delete_one(
        &self,
        ctx: &Context<'_>,
        table: String,
        id: ID,
        #[graphql(default_with = "String::from(\"id\")")] id_column: String,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "deleteOne")?;
        let w = sql::eq_filter(&id_column, id.as_str());
        let q = sql::delete(&table, Some(&w)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Deletes rows matching a filter (a filter is required).
    async fn delete_many(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: WhereClause,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "deleteMany")?;
        let q = sql::delete(&table, Some(&filter)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Creates a table (admin).
    async fn create_table(
        &self,
        ctx: &Context<'_>,
        name: String,
        columns: Vec<ColumnDefinitionInput>,
        #[graphql(default)] if_not_exists: bool,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Admin, "createTable")?;
        let cols: Vec<ColumnDef> = columns
            .into_iter()
            .map(|c| ColumnDef {
                name: c.name,
                data_type: c.data_type,
                nullable: c.nullable,
                primary_key: c.primary_key,
            })
            .collect();
        let q = sql::create_table(&name, &cols, if_not_exists).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, None).await)
    }

    /// Drops a table (admin).
    async fn drop_table(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(default)] if_exists: bool,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Admin, "dropTable")?;
        let q = sql::drop_table(&name, if_exists).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, None).await)
    }

    /// Begins a transaction (with its own memory context).
    async fn begin_transaction(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] isolation_level: IsolationLevel,
    ) -> async_graphql::Result<TransactionInfo> {
        let p = require(ctx, Role::Readwrite, "beginTransaction")?;
        let s = session(ctx)?;
        let t = crate::server::api::rest::txns::begin_txn(app(ctx), p, s, isolation_level, None)
            .await
            .map_err(from_problem)?;
        Ok(t.into())
    }

    /// Commits a transaction.
    async fn commit_transaction(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<TransactionInfo> {
        let p = require(ctx, Role::Readwrite, "commitTransaction")?;
        let t = crate::server::api::rest::txns::finish_txn(app(ctx), p, id.as_str(), true)
            .await
            .map_err(from_problem)?;
        Ok(t.into())
    }

    /// Rolls a transaction back.
    async fn rollback_transaction(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<TransactionInfo> {
        let p = require(ctx, Role::Readwrite, "rollbackTransaction")?;
        let t = crate::server::api::rest::txns::finish_txn(app(ctx), p, id.as_str(), false)
            .await
            .map_err(from_problem)?;
        Ok(t.into())
    }
}
