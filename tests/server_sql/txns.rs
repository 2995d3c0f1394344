//! Transactions: rollback and commit, readers beside a writer, SQL transaction control, the query memory limit, concurrent clients.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_and_commit_keeps() {
    let dir = temp_dir("txn");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(
        ADMIN,
        "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER)",
    )
    .await
    .ok();
    c.sql(RW, "INSERT INTO acct VALUES (1, 100), (2, 50)")
        .await
        .ok();

    for commit in [false, true] {
        let t = c.post("/api/v1/transactions", RW, json!({})).await.ok();
        let id = t["transaction_id"].as_u64().unwrap();
        assert_eq!(t["isolation_level"], "SERIALIZABLE", "{t}");
        let ctx = t["memory"]["context_id"].as_u64().unwrap();
        c.sql_in(RW, "UPDATE acct SET bal = bal - 30 WHERE id = 1", id)
            .await
            .ok();
        c.sql_in(RW, "DELETE FROM acct WHERE id = 2", id).await.ok();
        c.sql_in(RW, "INSERT INTO acct VALUES (3, 7)", id)
            .await
            .ok();
        // A failing statement does not end the transaction.
        c.sql_in(RW, "INSERT INTO acct VALUES (3, 8)", id)
            .await
            .problem(409);
        let v = c
            .sql_in(RW, "SELECT id, bal FROM acct ORDER BY id", id)
            .await
            .ok();
        assert_eq!(v["rows"], json!([[1, 70], [3, 7]]));
        let list = context_ids(&c.get("/api/v1/memory/contexts", RO).await.ok());
        assert!(list.contains(&ctx));
        let what = if commit { "commit" } else { "rollback" };
        c.post(&format!("/api/v1/transactions/{id}/{what}"), RW, json!({}))
            .await
            .ok();
        let list = context_ids(&c.get("/api/v1/memory/contexts", RO).await.ok());
        assert!(!list.contains(&ctx), "context gone after {what}");
        let rows = c.rows(RO, "SELECT id, bal FROM acct ORDER BY id").await;
        if commit {
            assert_eq!(rows, vec![json!([1, 70]), json!([3, 7])]);
        } else {
            assert_eq!(rows, vec![json!([1, 100]), json!([2, 50])]);
        }
    }

    // DDL rolls back too.
    let t = c.post("/api/v1/transactions", ADMIN, json!({})).await.ok();
    let id = t["transaction_id"].as_u64().unwrap();
    c.sql_in(ADMIN, "DROP TABLE acct", id).await.ok();
    c.sql_in(ADMIN, "CREATE TABLE fresh (a INTEGER)", id)
        .await
        .ok();
    c.post(
        &format!("/api/v1/transactions/{id}/rollback"),
        ADMIN,
        json!({}),
    )
    .await
    .ok();
    assert_eq!(c.count("acct").await, 2);
    c.sql(RO, "SELECT * FROM fresh").await.problem(404);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A transaction holds the writer lock between its statements; readers on
/// other connections are answered meanwhile, from the committed state, and
/// see the transaction's rows once its commit is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_write_transaction_does_not_block_readers() {
    let dir = temp_dir("readers");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(
        ADMIN,
        "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER)",
    )
    .await
    .ok();
    let vals: Vec<String> = (1..=300).map(|i| format!("({i}, 100)")).collect();
    c.sql(RW, &format!("INSERT INTO acct VALUES {}", vals.join(", ")))
        .await
        .ok();
    let t = c.post("/api/v1/transactions", RW, json!({})).await.ok();
    let id = t["transaction_id"].as_u64().unwrap();
    c.sql_in(RW, "UPDATE acct SET bal = bal - 60 WHERE id <= 150", id)
        .await
        .ok();
    c.sql_in(RW, "DELETE FROM acct WHERE id = 300", id)
        .await
        .ok();
    c.sql_in(RW, "INSERT INTO acct VALUES (301, 7)", id)
        .await
        .ok();
    // The writer's view.
    let v = c
        .sql_in(RW, "SELECT COUNT(*), SUM(bal) FROM acct", id)
        .await
        .ok();
    assert_eq!(v["rows"], json!([[300, 300 * 100 - 150 * 60 - 100 + 7]]));
    let p = c.get("/api/v1/stats/performance", RO).await.ok();
    assert_eq!(p["locks_held"], 1, "{p}");

    // Readers, while the transaction is open: answered (a reader that
    // waited would get a 409 after the lock's 10 s), with the committed rows.
    let mut r = Client::connect(srv.addr).await;
    let t0 = std::time::Instant::now();
    assert_eq!(
        r.rows(RO, "SELECT COUNT(*), SUM(bal) FROM acct").await,
        vec![json!([300, 30_000])]
    );
    assert_eq!(
        r.rows(RO, "SELECT bal FROM acct WHERE id = 1").await,
        vec![json!([100])]
    );
    assert_eq!(
        r.rows(RO, "SELECT bal FROM acct WHERE id = 300").await,
        vec![json!([100])]
    );
    assert!(
        r.rows(RO, "SELECT bal FROM acct WHERE id = 301")
            .await
            .is_empty()
    );
    // A transaction that only reads sees one state throughout (opening one
    // needs the readwrite role, like every POST).
    let rt = r.post("/api/v1/transactions", RW, json!({})).await.ok();
    let rid = rt["transaction_id"].as_u64().unwrap();
    let first = r.sql_in(RW, "SELECT SUM(bal) FROM acct", rid).await.ok();
    assert_eq!(first["rows"], json!([[30_000]]));
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );

    c.post(&format!("/api/v1/transactions/{id}/commit"), RW, json!({}))
        .await
        .ok();
    let after = 300 * 100 - 150 * 60 - 100 + 7;
    assert_eq!(
        r.rows(RO, "SELECT COUNT(*), SUM(bal) FROM acct").await,
        vec![json!([300, after])]
    );
    assert_eq!(
        r.rows(RO, "SELECT bal FROM acct WHERE id = 301").await,
        vec![json!([7])]
    );
    // The read-only transaction still sees its snapshot…
    let again = r.sql_in(RW, "SELECT SUM(bal) FROM acct", rid).await.ok();
    assert_eq!(again["rows"], first["rows"]);
    r.post(&format!("/api/v1/transactions/{rid}/commit"), RW, json!({}))
        .await
        .ok();
    // …and a transaction that read before that commit cannot write after
    // it: its reads are stale (409, roll back and retry).
    let wt = r.post("/api/v1/transactions", RW, json!({})).await.ok();
    let wid = wt["transaction_id"].as_u64().unwrap();
    r.sql_in(RW, "SELECT bal FROM acct WHERE id = 1", wid)
        .await
        .ok();
    c.sql(RW, "UPDATE acct SET bal = 1 WHERE id = 2").await.ok();
    r.sql_in(RW, "UPDATE acct SET bal = bal + 1 WHERE id = 1", wid)
        .await
        .problem(409);
    r.post(
        &format!("/api/v1/transactions/{wid}/rollback"),
        RW,
        json!({}),
    )
    .await
    .ok();
    let p = c.get("/api/v1/stats/performance", RO).await.ok();
    assert_eq!(p["locks_held"], 0, "{p}");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_written_as_sql() {
    let dir = temp_dir("sqltxn");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(ADMIN, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .await
        .ok();
    // BEGIN answers a transaction id and its isolation; ROLLBACK undoes.
    let b = c
        .sql(RW, "START TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .ok();
    assert_eq!(b["statement"], "BEGIN", "{b}");
    assert_eq!(b["isolation_level"], "SERIALIZABLE", "{b}");
    let id = b["transaction_id"].as_u64().unwrap();
    c.sql_in(RW, "INSERT INTO t VALUES (1)", id).await.ok();
    let r = c.sql_in(RW, "ROLLBACK", id).await.ok();
    assert_eq!(r["status"], "rolled_back", "{r}");
    assert_eq!(c.count("t").await, 0);
    // BEGIN; … COMMIT keeps.
    let id = c.sql(RW, "BEGIN").await.ok()["transaction_id"]
        .as_u64()
        .unwrap();
    c.sql_in(RW, "INSERT INTO t VALUES (2)", id).await.ok();
    c.sql_in(RW, "COMMIT;", id).await.ok();
    assert_eq!(c.count("t").await, 1);
    // Misuse: COMMIT without an id, BEGIN inside a transaction, an unknown id.
    c.sql(RW, "COMMIT").await.problem(400);
    let id = c.sql(RW, "BEGIN").await.ok()["transaction_id"]
        .as_u64()
        .unwrap();
    c.sql_in(RW, "BEGIN", id).await.problem(409);
    c.sql_in(RW, "ROLLBACK", id).await.ok();
    c.sql_in(RW, "COMMIT", 999_999).await.problem(404);
    // A batch written as BEGIN; …; COMMIT is one transaction.
    let v = c
        .post(
            "/api/v1/batch",
            RW,
            json!({"statements": ["BEGIN", "INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)", "COMMIT"]}),
        )
        .await
        .ok();
    assert_eq!(v["results"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(c.count("t").await, 3);
    c.post(
        "/api/v1/batch",
        RW,
        json!({"statements": ["INSERT INTO t VALUES (5)", "ROLLBACK"]}),
    )
    .await
    .problem(400);
    assert_eq!(c.count("t").await, 3);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_memory_limit_fires_and_the_server_goes_on() {
    let dir = temp_dir("limit");
    let mut cfg = config(&dir);
    cfg.query_memory_limit = 1 << 20;
    let srv = start(cfg).await;
    let mut c = Client::connect(srv.addr).await;
    let p = c
        .sql(RO, "SELECT REPEAT('A', 5000000) AS big")
        .await
        .problem(413);
    assert_eq!(p["type"], "urn:rustydb:problem:query-memory-limit");
    assert_eq!(p["limit_bytes"], 1 << 20);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("--query-memory-limit"),
        "{p}"
    );
    // Refused before GlueSQL builds it: a string far over the limit, a
    // generated cross join.
    let p = c
        .sql(RO, "SELECT REPEAT('A', 100000000000) AS huge")
        .await
        .problem(413);
    assert_eq!(p["requested_bytes"], 100_000_000_000u64, "{p}");
    c.sql(
        RO,
        "SELECT COUNT(*) FROM SERIES(100000) a CROSS JOIN SERIES(100000) b",
    )
    .await
    .problem(413);
    // A cross join too large for the limit stops in the scan.
    c.sql(ADMIN, "CREATE TABLE wide (id INTEGER, pad TEXT)")
        .await
        .ok();
    let values: Vec<String> = (0..200)
        .map(|i| format!("({i}, REPEAT('p', 200))"))
        .collect();
    c.sql(
        RW,
        &format!("INSERT INTO wide VALUES {}", values.join(", ")),
    )
    .await
    .ok();
    c.sql(RO, "SELECT COUNT(*) FROM wide a CROSS JOIN wide b")
        .await
        .problem(413);
    let v = c.sql(RO, "SELECT 1 AS ok").await.ok();
    assert_eq!(v["rows"], json!([[1]]));
    assert_eq!(c.count("wide").await, 200);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_clients() {
    let dir = temp_dir("conc");
    let srv = start(config(&dir)).await;
    let mut c = Client::connect(srv.addr).await;
    c.sql(ADMIN, "CREATE TABLE hits (client INTEGER, n INTEGER)")
        .await
        .ok();
    let mut tasks = Vec::new();
    for k in 0..8 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            for n in 0..25 {
                c.sql(RW, &format!("INSERT INTO hits VALUES ({k}, {n})"))
                    .await
                    .ok();
                let rows = c
                    .rows(RO, &format!("SELECT COUNT(*) FROM hits WHERE client = {k}"))
                    .await;
                assert_eq!(rows[0][0], n + 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(c.count("hits").await, 200);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
