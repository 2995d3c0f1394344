//! The storage on a small pool directly: eviction and write-back, page chains, a model through rollbacks and reopen, odd statements.

use super::*;

/// Engine options: `frames` frames, the data file in the directory or `disk`.
fn opts(
    frames: usize,
    disk: Option<Arc<dyn rustydb_memory::buffer_pool::DiskManager>>,
) -> server::sql::glue::DbOptions {
    server::sql::glue::DbOptions {
        frames,
        disk,
        ..Default::default()
    }
}

fn run(
    e: &GlueEngine,
    ctx: &MemoryContext<'static>,
    sql: &str,
) -> server::sql::engine::QueryOutput {
    e.execute(&QueryCall {
        sql,
        txn: None,
        mode: Mode::Admin,
        ctx,
    })
    .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

#[test]
fn a_64_page_pool_evicts_writes_back_and_reads_every_row() {
    let dir = temp_dir("pool");
    let open = || GlueEngine::open_with(&dir, opts(64, None), None).unwrap();
    let ctx = MemoryContext::root("test");
    let e = open();
    run(
        &e,
        &ctx,
        "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)",
    );
    // Half the rows in one transaction: more dirty pages than frames, so
    // dirty pages are written back on eviction before the commit's flush.
    e.begin(1, server::sql::engine::IsolationLevel::ReadCommitted)
        .unwrap();
    for chunk in 0..20 {
        if chunk == 10 {
            let s = e.pool().stats();
            assert!(s.dirty_writebacks > 0, "{s:?}");
            e.commit(1).unwrap();
        }
        let values: Vec<String> = (0..500)
            .map(|i| {
                let id = chunk * 500 + i;
                format!("({id}, 'value {id} padded to make rows longer')")
            })
            .collect();
        let sql = format!("INSERT INTO big VALUES {}", values.join(", "));
        let out = e
            .execute(&QueryCall {
                sql: &sql,
                txn: (chunk < 10).then_some(1),
                mode: Mode::ReadWrite,
                ctx: &ctx,
            })
            .unwrap();
        assert_eq!(out.rows_affected, 500);
    }
    let stats = e.pool().stats();
    let pages = e.pool().disk().num_pages();
    assert!(pages > 64, "the table outgrows the pool: {pages} pages");
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(stats.disk_writes > 0, "{stats:?}");
    let out = run(&e, &ctx, "SELECT COUNT(*), SUM(id) FROM big");
    assert_eq!(out.rows[0][0], 10_000);
    assert_eq!(out.rows[0][1], 10_000 * 9_999 / 2);
    let t = e.table("big").unwrap().unwrap();
    assert_eq!(t.row_count, 10_000);
    drop(e);

    // From the file alone.
    let e = open();
    let out = run(&e, &ctx, "SELECT id, v FROM big");
    assert_eq!(out.rows.len(), 10_000);
    let mut seen = vec![false; 10_000];
    for r in &out.rows {
        let id = r[0].as_u64().unwrap() as usize;
        assert_eq!(
            r[1].as_str().unwrap(),
            format!("value {id} padded to make rows longer")
        );
        seen[id] = true;
    }
    assert!(seen.iter().all(|&s| s));
    assert!(e.pool().stats().misses > 0);
    // Errors are values, not panics.
    let err = e
        .execute(&QueryCall {
            sql: "SELECT * FROM missing",
            txn: None,
            mode: Mode::ReadOnly,
            ctx: &ctx,
        })
        .unwrap_err();
    assert!(matches!(err, SqlError::NotFound(_)), "{err:?}");
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn long_rows_chain_pages_and_dropped_tables_give_pages_back() {
    let dir = temp_dir("small");
    let open = || GlueEngine::open_with(&dir, opts(16, None), None).unwrap();
    let ctx = MemoryContext::root("test");
    let e = open();
    run(&e, &ctx, "CREATE TABLE s (id INTEGER PRIMARY KEY, t TEXT)");
    for i in 0..20 {
        run(
            &e,
            &ctx,
            &format!("INSERT INTO s VALUES ({i}, REPEAT('{}', 10000))", i % 10),
        );
    }
    run(&e, &ctx, "DELETE FROM s WHERE id >= 10");
    let grown = e.pool().disk().num_pages();
    drop(e);
    let e = open();
    let out = run(&e, &ctx, "SELECT id, t FROM s ORDER BY id");
    assert_eq!(out.rows.len(), 10);
    for r in &out.rows {
        let id = r[0].as_u64().unwrap();
        assert_eq!(r[1].as_str().unwrap(), id.to_string().repeat(10000));
    }
    // Freed chain pages are reused: ten more long rows fit without growing much.
    for i in 10..20 {
        run(
            &e,
            &ctx,
            &format!("INSERT INTO s VALUES ({i}, REPEAT('x', 10000))"),
        );
    }
    assert!(e.pool().disk().num_pages() <= grown + 2, "{grown}");
    run(&e, &ctx, "DROP TABLE s");
    let before = e.pool().disk().num_pages();
    run(&e, &ctx, "CREATE TABLE s2 (id INTEGER, t TEXT)");
    for i in 0..20 {
        run(
            &e,
            &ctx,
            &format!("INSERT INTO s2 VALUES ({i}, REPEAT('y', 10000))"),
        );
    }
    assert_eq!(
        e.pool().disk().num_pages(),
        before,
        "the dropped table's pages"
    );
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Random inserts, updates (growing, shrinking, into and out of page chains)
/// and deletes, in autocommit and in transactions that commit or roll back,
/// checked against a model after every step and after reopening.
#[test]
fn random_changes_match_a_model_through_rollbacks_and_reopen() {
    use std::collections::BTreeMap;
    let disk: Arc<dyn rustydb_memory::buffer_pool::DiskManager> =
        Arc::new(rustydb_memory::buffer_pool::MemDisk::new(4096));
    let dir = temp_dir("model");
    let open = || GlueEngine::open_with(&dir, opts(16, Some(disk.clone())), None).unwrap();
    let ctx = MemoryContext::root("test");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let check = |e: &GlueEngine, model: &BTreeMap<u64, (u64, char)>| {
        let out = run(
            e,
            &ctx,
            "SELECT id, LENGTH(s), SUBSTR(s, 1, 1) FROM r ORDER BY id",
        );
        let got: BTreeMap<u64, (u64, char)> = out
            .rows
            .iter()
            .map(|r| {
                let c = r[2].as_str().unwrap().chars().next().unwrap();
                (r[0].as_u64().unwrap(), (r[1].as_u64().unwrap(), c))
            })
            .collect();
        assert_eq!(&got, model);
    };
    let e = open();
    run(&e, &ctx, "CREATE TABLE r (id INTEGER PRIMARY KEY, s TEXT)");
    let mut model: BTreeMap<u64, (u64, char)> = BTreeMap::new();
    let mut txn_id = 100;
    for step in 0..300 {
        let in_txn = rand(4) == 0;
        let mut shadow = model.clone();
        if in_txn {
            txn_id += 1;
            e.begin(txn_id, server::sql::engine::IsolationLevel::Serializable)
                .unwrap();
        }
        for _ in 0..if in_txn { 1 + rand(6) } else { 1 } {
            let id = rand(60);
            let len = [1, 10, 300, 3000, 5000, 12000][rand(6) as usize];
            let c = (b'a' + rand(26) as u8) as char;
            let sql = match rand(3) {
                0 if !shadow.contains_key(&id) => {
                    shadow.insert(id, (len, c));
                    format!("INSERT INTO r VALUES ({id}, REPEAT('{c}', {len}))")
                }
                0 | 1 => {
                    if let Some(v) = shadow.get_mut(&id) {
                        *v = (len, c);
                    }
                    format!("UPDATE r SET s = REPEAT('{c}', {len}) WHERE id = {id}")
                }
                _ => {
                    shadow.remove(&id);
                    format!("DELETE FROM r WHERE id = {id}")
                }
            };
            e.execute(&QueryCall {
                sql: &sql,
                txn: in_txn.then_some(txn_id),
                mode: Mode::ReadWrite,
                ctx: &ctx,
            })
            .unwrap_or_else(|err| panic!("step {step}: {sql}: {err}"));
        }
        if in_txn {
            if rand(2) == 0 {
                e.commit(txn_id).unwrap();
                model = shadow;
            } else {
                e.rollback(txn_id).unwrap();
            }
        } else {
            model = shadow;
        }
        check(&e, &model);
    }
    assert!(model.len() > 10, "{}", model.len());
    drop(e);
    let e = open();
    check(&e, &model);
}

/// Odd statements are answered (a result or a 4xx-class error), never a
/// panic or an internal error.
#[test]
fn odd_statements_get_answers() {
    let dir = temp_dir("odd");
    let disk = Arc::new(rustydb_memory::buffer_pool::MemDisk::new(4096));
    let e = GlueEngine::open_with(&dir, opts(16, Some(disk)), None).unwrap();
    let ctx = MemoryContext::root("test");
    run(&e, &ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)");
    run(&e, &ctx, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    for sql in [
        "",
        ";",
        "SELECT 1; SELECT 2",
        "SHOW TABLES",
        "SHOW VERSION",
        "SHOW COLUMNS FROM t",
        "CREATE INDEX i ON t (s)",
        "DROP INDEX t.i",
        "ALTER TABLE t ADD COLUMN x INTEGER",
        "ALTER TABLE t RENAME TO u",
        "INSERT INTO t SELECT id + 10, s FROM t",
        "CREATE TABLE c AS SELECT * FROM t",
        "DROP TABLE IF EXISTS nope",
        "DROP TABLE nope",
        "EXPLAIN BEGIN",
        "EXPLAIN EXPLAIN SELECT 1",
        "EXPLAIN SELECT * FROM nope",
        "EXPLAIN INSERT INTO t VALUES (9, 'z')",
        "EXPLAIN UPDATE t SET s = 'q' WHERE id = 1",
        "EXPLAIN DELETE FROM t WHERE id = 1",
        "VALUES (1) UNION VALUES ('a', 'b')",
        "SELECT 1 INTERSECT SELECT 1",
        "SELECT * FROM t UNION SELECT * FROM t ORDER BY id",
        "(SELECT 1) UNION (SELECT 2)",
        "SELECT * FROM GLUE_TABLES",
        "SELECT * FROM t a, t b, t c",
        "SELECT * FROM t NATURAL JOIN t",
        "SELECT * FROM t FULL OUTER JOIN t u ON t.id = u.id",
        "SELECT 1 / 0",
        "SELECT CAST('x' AS INTEGER)",
        "SELECT 9223372036854775807 + 1",
        "UPDATE t SET id = 2 WHERE id = 1",
        "INSERT INTO t VALUES (NULL, 'n')",
        "INSERT INTO t (s) VALUES ('no key')",
        "CREATE FUNCTION f() RETURN 1",
        "COMMIT",
        "ROLLBACK",
        "SELECT * FROM t WHERE s LIKE '%'",
        "WITH x AS (SELECT 1) SELECT * FROM x",
    ] {
        let r = e.execute(&QueryCall {
            sql,
            txn: None,
            mode: Mode::Admin,
            ctx: &ctx,
        });
        if let Err(err) = &r {
            assert!(
                !matches!(err, SqlError::Internal(_)),
                "{sql}: internal error {err}"
            );
        }
    }
    // GlueSQL 0.20 panics on a negative REPEAT count (capacity overflow): a
    // literal one is refused up front as bad SQL …
    let err = e
        .execute(&QueryCall {
            sql: "SELECT REPEAT('a', -1)",
            txn: None,
            mode: Mode::Admin,
            ctx: &ctx,
        })
        .unwrap_err();
    assert!(matches!(err, SqlError::Invalid(_)), "{err}");
    // … a computed one reaches GlueSQL: the engine catches the panic, undoes
    // the statement and answers an internal error.
    let err = e
        .execute(&QueryCall {
            sql: "SELECT REPEAT('a', 1 - 2)",
            txn: None,
            mode: Mode::Admin,
            ctx: &ctx,
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("failed on this statement"),
        "{err}"
    );
    // ALTER TABLE works through Store/StoreMut (GlueSQL's default
    // AlterTable): renamed, the table keeps its rows, and new generated keys
    // do not collide with the moved ones.
    let out = run(&e, &ctx, "SELECT COUNT(*) FROM u");
    assert!(out.rows[0][0].as_u64().unwrap() >= 2);
    run(&e, &ctx, "CREATE TABLE np (a INTEGER)");
    run(&e, &ctx, "INSERT INTO np VALUES (1), (2), (3)");
    run(&e, &ctx, "ALTER TABLE np RENAME TO np2");
    run(&e, &ctx, "INSERT INTO np2 VALUES (4)");
    let out = run(&e, &ctx, "SELECT COUNT(*), SUM(a) FROM np2");
    assert_eq!(out.rows[0], vec![json!(4), json!(10)]);
    // … and it rolls back: the old schema and the old rows.
    e.begin(1, server::sql::engine::IsolationLevel::Serializable)
        .unwrap();
    e.execute(&QueryCall {
        sql: "ALTER TABLE np2 ADD COLUMN b INTEGER DEFAULT 7",
        txn: Some(1),
        mode: Mode::Admin,
        ctx: &ctx,
    })
    .unwrap();
    e.rollback(1).unwrap();
    let out = run(&e, &ctx, "SELECT * FROM np2 WHERE a = 1");
    assert_eq!(out.rows, vec![vec![json!(1)]]);
}
