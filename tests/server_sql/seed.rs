//! The seed's SQL cases, GraphQL data fields and REST tables, a restart.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_sql_cases() {
    let dir = temp_dir("seed");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;

    // SELECT without FROM.
    let v = c.sql(RO, "SELECT 1 as test").await.ok();
    assert_eq!(v["columns"][0]["name"], "test");
    assert_eq!(v["rows"], json!([[1]]));
    assert_eq!(v["statement"], "SELECT");
    assert!(v["memory"]["context_id"].as_u64().unwrap() > 0);

    // VALUES with 10 rows.
    let rows = c
        .rows(
            RO,
            "VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d'),(5,'e'),(6,'f'),(7,'g'),(8,'h'),(9,'i'),(10,'j')",
        )
        .await;
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9], json!([10, "j"]));

    // CROSS JOIN: the product.
    let rows = c
        .rows(
            RO,
            "SELECT * FROM (VALUES (1),(2)) AS a CROSS JOIN (VALUES (3),(4),(5)) AS b",
        )
        .await;
    assert_eq!(rows.len(), 6);

    // REPEAT.
    let rows = c.rows(RO, "SELECT REPEAT('A', 1000) AS s").await;
    assert_eq!(rows[0][0].as_str().unwrap().len(), 1000);
    // The seed's exact text (MEMORY-038): double quotes, no FROM.
    let rows = c.rows(RO, r#"SELECT REPEAT("A", 1000)"#).await;
    assert_eq!(rows[0][0].as_str().unwrap(), "A".repeat(1000));

    // DDL and DML round trip.
    c.sql(
        ADMIN,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)",
    )
    .await
    .ok();
    let v = c
        .sql(
            RW,
            "INSERT INTO users VALUES (1, 'ann', 31), (2, 'bob', 17), (3, 'cy', 45)",
        )
        .await
        .ok();
    assert_eq!(v["rows_affected"], 3);
    assert_eq!(v["statement"], "INSERT");
    let v = c
        .sql(RW, "UPDATE users SET age = age + 1 WHERE id = 2")
        .await
        .ok();
    assert_eq!(v["rows_affected"], 1);
    let rows = c.rows(RO, "SELECT name, age FROM users WHERE id = 2").await;
    assert_eq!(rows, vec![json!(["bob", 18])]);
    let v = c.sql(RW, "DELETE FROM users WHERE age > 40").await.ok();
    assert_eq!(v["rows_affected"], 1);
    let rows = c.rows(RO, "SELECT id FROM users ORDER BY id").await;
    assert_eq!(rows, vec![json!([1]), json!([2])]);
    c.sql(ADMIN, "CREATE TABLE other (x INTEGER)").await.ok();
    c.sql(RW, "INSERT INTO other VALUES (10), (20), (30)")
        .await
        .ok();
    let rows = c
        .rows(RO, "SELECT COUNT(*) FROM users CROSS JOIN other")
        .await;
    assert_eq!(rows[0][0], 6);
    let rows = c.rows(RO, "SELECT COUNT(*) FROM users, other").await;
    assert_eq!(rows[0][0], 6);

    // Long strings: 1000 characters in a row; 20 000 span several pages.
    c.sql(
        ADMIN,
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)",
    )
    .await
    .ok();
    c.sql(RW, "INSERT INTO docs VALUES (1, REPEAT('x', 1000))")
        .await
        .ok();
    c.sql(RW, "INSERT INTO docs VALUES (2, REPEAT('y', 20000))")
        .await
        .ok();
    let rows = c
        .rows(RO, "SELECT id, LENGTH(body) FROM docs ORDER BY id")
        .await;
    assert_eq!(rows, vec![json!([1, 1000]), json!([2, 20000])]);
    c.sql(RW, "UPDATE docs SET body = 'short' WHERE id = 2")
        .await
        .ok();
    let rows = c.rows(RO, "SELECT body FROM docs WHERE id = 2").await;
    assert_eq!(rows, vec![json!(["short"])]);

    // UNION dedups, UNION ALL does not; over REST and GraphQL.
    let rows = c
        .rows(RO, "SELECT 1 AS a UNION SELECT 1 AS a UNION SELECT 2 AS a")
        .await;
    assert_eq!(rows, vec![json!([1]), json!([2])]);
    let rows = c
        .rows(RO, "SELECT id FROM users UNION ALL SELECT id FROM users")
        .await;
    assert_eq!(rows.len(), 4);
    let v = c
        .gql(
            RO,
            r#"{ executeUnion(queries: ["SELECT id FROM users", "SELECT x FROM other"], all: false) }"#,
        )
        .await;
    assert_eq!(
        v["data"]["executeUnion"]["rows"].as_array().unwrap().len(),
        5,
        "{v}"
    );

    // EXPLAIN: the plan as text.
    let rows = c
        .rows(
            RO,
            "EXPLAIN SELECT * FROM users CROSS JOIN other WHERE users.id = 1",
        )
        .await;
    let text: Vec<&str> = rows.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert!(
        text.iter().any(|l| l.contains("Seq scan on other")),
        "{text:?}"
    );
    assert!(text.iter().any(|l| l.contains("cross product")), "{text:?}");
    let rows = c
        .rows(RO, "EXPLAIN SELECT name FROM users WHERE id = 2")
        .await;
    assert!(
        rows.iter().any(|r| r[0]
            .as_str()
            .unwrap()
            .contains("Primary key lookup on users")),
        "{rows:?}"
    );
    let v = c.gql(RO, r#"{ explain(table: "users") }"#).await;
    assert!(
        v["data"]["explain"].as_str().unwrap().contains("users"),
        "{v}"
    );

    // Errors: the parser's message (400), a missing table (404), roles (403).
    let p = c.sql(RO, "SELEC 1").await.problem(400);
    assert!(p["detail"].as_str().unwrap().contains("SELEC"), "{p}");
    c.sql(RO, "SELECT * FROM").await.problem(400);
    let p = c.sql(RO, "SELECT * FROM nowhere").await.problem(404);
    assert!(p["detail"].as_str().unwrap().contains("nowhere"), "{p}");
    c.sql(RO, "INSERT INTO users VALUES (9, 'z', 1)")
        .await
        .problem(403);
    c.sql(RW, "DROP TABLE users").await.problem(403);
    c.sql(RW, "INSERT INTO users VALUES (1, 'dup', 1)")
        .await
        .problem(409);
    c.sql(RO, "BEGIN").await.problem(403);
    assert_eq!(c.count("users").await, 2);

    // The catalog over REST and GraphQL.
    let v = c.get("/api/v1/tables/users", RO).await.ok();
    assert_eq!(v["row_count"], 2, "{v}");
    let v = c.gql(RO, "{ tables(limit: 10) { name rowCount } }").await;
    let names: Vec<&str> = v["data"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docs", "other", "users"], "{v}");

    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_data_fields_and_rest_tables() {
    let dir = temp_dir("gql");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;

    let spec = json!({"columns": [
        {"name": "id", "type": "INTEGER", "nullable": false, "primary_key": true},
        {"name": "name", "type": "TEXT"},
        {"name": "score", "type": "INTEGER"}
    ]});
    c.post("/api/v1/tables/people", ADMIN, spec.clone())
        .await
        .ok();
    c.post("/api/v1/tables/people", ADMIN, spec)
        .await
        .problem(409);
    let v = c
        .gql(
            RW,
            r#"mutation { insertMany(table: "people", rows: [{id: 1, name: "ann", score: 5}, {id: 2, name: "bob", score: 7}, {id: 3, name: "cyd", score: 9}]) { __typename } }"#,
        )
        .await;
    assert!(v.get("errors").is_none(), "{v}");
    let v = c
        .gql(
            RO,
            r#"{ queryTable(table: "people", where: {condition: {column: "score", op: GT, value: 5}}, orderBy: [{column: "id", direction: DESC}], limit: 1) { rows rowCount } }"#,
        )
        .await;
    assert_eq!(v["data"]["queryTable"]["rowCount"], 1, "{v}");
    assert_eq!(v["data"]["queryTable"]["rows"][0]["name"], "cyd", "{v}");
    let v = c.gql(RO, r#"{ count(table: "people") }"#).await;
    assert_eq!(v["data"]["count"], "3", "{v}");
    let v = c
        .gql(
            RO,
            r#"{ aggregate(table: "people", aggregates: [{function: SUM, column: "score"}]) { values } }"#,
        )
        .await;
    assert_eq!(v["data"]["aggregate"]["values"]["sum_score"], 21, "{v}");
    let v = c
        .gql(RO, r#"{ row(table: "people", id: "2") { data } }"#)
        .await;
    assert_eq!(v["data"]["row"]["data"]["name"], "bob", "{v}");
    let v = c.gql(RO, r#"{ search(query: "an") { totalCount } }"#).await;
    assert_eq!(v["data"]["search"]["totalCount"], 1, "{v}");
    let v = c.gql(RO, r#"{ tables { name rowCount } }"#).await;
    assert_eq!(v["data"]["tables"][0]["rowCount"], "3", "{v}");
    let v = c
        .gql(
            ADMIN,
            r#"{ executeSql(sql: "SELECT name FROM people WHERE id = 1") }"#,
        )
        .await;
    assert_eq!(v["data"]["executeSql"]["rows"], json!([["ann"]]), "{v}");

    // Relay connection, row mutations, table mutations.
    let v = c
        .gql(
            RO,
            r#"{ queryTableConnection(table: "people", orderBy: [{column: "id"}], first: 2, after: "0") { totalCount pageInfo { hasNextPage hasPreviousPage } edges { node { id data } } } }"#,
        )
        .await;
    let conn = &v["data"]["queryTableConnection"];
    assert_eq!(conn["totalCount"], "3", "{v}");
    assert_eq!(conn["edges"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(conn["edges"][0]["node"]["data"]["name"], "bob", "{v}");
    assert_eq!(conn["pageInfo"]["hasPreviousPage"], true, "{v}");
    assert_eq!(conn["pageInfo"]["hasNextPage"], false, "{v}");
    let v = c
        .gql(
            RW,
            r#"mutation { updateOne(table: "people", id: "1", data: {score: 50}) { ... on MutationSuccess { affectedRows statement } } }"#,
        )
        .await;
    assert_eq!(v["data"]["updateOne"]["affectedRows"], "1", "{v}");
    let v = c
        .gql(
            RW,
            r#"mutation { insertOne(table: "people", data: {id: 9, name: "zed", score: 0}) { ... on MutationSuccess { affectedRows } } }"#,
        )
        .await;
    assert_eq!(v["data"]["insertOne"]["affectedRows"], "1", "{v}");
    let v = c
        .gql(
            RW,
            r#"mutation { deleteOne(table: "people", id: "9") { ... on MutationSuccess { affectedRows } } }"#,
        )
        .await;
    assert_eq!(v["data"]["deleteOne"]["affectedRows"], "1", "{v}");
    let v = c
        .gql(
            RW,
            r#"mutation { insertOne(table: "people", data: {id: 1, name: "again"}) { ... on MutationError { code } } }"#,
        )
        .await;
    assert_eq!(v["data"]["insertOne"]["code"], "CONFLICT", "{v}");
    let v = c
        .gql(
            ADMIN,
            r#"mutation { createTable(name: "tags", columns: [{name: "tag", dataType: "TEXT"}]) { ... on MutationSuccess { statement } } }"#,
        )
        .await;
    assert_eq!(v["data"]["createTable"]["statement"], "CREATE TABLE", "{v}");
    let v = c
        .gql(
            ADMIN,
            r#"mutation { dropTable(name: "tags") { ... on MutationSuccess { statement } } }"#,
        )
        .await;
    assert_eq!(v["data"]["dropTable"]["statement"], "DROP TABLE", "{v}");
    let rows = c.rows(RO, "SELECT score FROM people WHERE id = 1").await;
    assert_eq!(rows, vec![json!([50])]);

    // A batch is one transaction: a failing statement rolls all back.
    let p = c
        .post(
            "/api/v1/batch",
            RW,
            json!({"statements": ["INSERT INTO people VALUES (4, 'dee', 1)", "INSERT INTO nowhere VALUES (1)"]}),
        )
        .await
        .problem(404);
    assert_eq!(p["transaction_status"], "rolled_back", "{p}");
    assert_eq!(c.count("people").await, 3);
    let v = c
        .post(
            "/api/v1/batch",
            RW,
            json!({"statements": ["INSERT INTO people VALUES (4, 'dee', 1)", "SELECT COUNT(*) FROM people"]}),
        )
        .await
        .ok();
    assert_eq!(v["results"][1]["result"]["rows"], json!([[4]]), "{v}");
    assert_eq!(c.count("people").await, 4);

    c.req("DELETE", "/api/v1/tables/people", ADMIN, None)
        .await
        .ok();
    c.sql(RO, "SELECT * FROM people").await.problem(404);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart() {
    let dir = temp_dir("restart");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(
        ADMIN,
        "CREATE TABLE kept (id INTEGER PRIMARY KEY, note TEXT)",
    )
    .await
    .ok();
    let values: Vec<String> = (0..500)
        .map(|i| format!("({i}, 'note number {i}')"))
        .collect();
    c.sql(
        RW,
        &format!("INSERT INTO kept VALUES {}", values.join(", ")),
    )
    .await
    .ok();
    c.sql(RW, "INSERT INTO kept VALUES (1000, REPEAT('z', 9000))")
        .await
        .ok();
    c.sql(RW, "DELETE FROM kept WHERE id < 100").await.ok();
    drop(c);
    srv.stop().await;

    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    assert_eq!(c.count("kept").await, 401);
    let rows = c.rows(RO, "SELECT note FROM kept WHERE id = 499").await;
    assert_eq!(rows, vec![json!(["note number 499"])]);
    let rows = c
        .rows(RO, "SELECT LENGTH(note) FROM kept WHERE id = 1000")
        .await;
    assert_eq!(rows, vec![json!([9000])]);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
