//! Crash recovery of the example server, as a process: a child server under
//! a concurrent write load is killed with SIGKILL at random moments, and
//! after each restart every acknowledged commit is present with its exact
//! contents, no row of an unacknowledged transaction is, and every page of
//! the data file passes its checksum. Also: a transaction larger than the
//! buffer pool killed before COMMIT, kills in the middle of a commit
//! (failpoints), a torn page write, and two servers on one data directory.
//!
//! The child is the example binary when `RUSTYDB_SERVER_BIN` names it (CI
//! builds it and sets it); otherwise this test binary runs itself as the
//! server — the example's `main`, the same two lines below, compiled in.
//!
//! `cargo test --release --test crash_recovery` (`CRASH_ITERATIONS=n`, 50 by
//! default, for the random kills).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustydb_memory::buffer_pool::{DiskManager, FileDisk};
use rustydb_memory::{BufferPool, DebugAlloc, RustyAlloc};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: DebugAlloc<RustyAlloc> = DebugAlloc::new(RustyAlloc::new());

#[path = "../examples/rustydb_server/server.rs"]
#[allow(unused)]
mod server;

const TOKEN: &str = "crash-admin-token-0123456789";
const CHILD_ENV: &str = "RUSTYDB_CRASH_CHILD_ARGS";

/// The server's `main` when this binary is the child.
#[test]
#[ignore = "the child server of the other tests (runs only with RUSTYDB_CRASH_CHILD_ARGS)"]
fn child_server() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args = args.split('\n').map(String::from).collect();
    std::process::exit(i32::from(server::run_main_status(args, Some(&GLOBAL))));
}

fn temp_dir(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("rustydb-crash-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child server process.
struct Server {
    child: Child,
    port: u16,
}

fn command(args: &[String], failpoints: &str) -> Command {
    let mut c = match std::env::var("RUSTYDB_SERVER_BIN") {
        Ok(bin) => {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
        Err(_) => {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args(["child_server", "--exact", "--ignored", "--nocapture"])
                .env(CHILD_ENV, args.join("\n"));
            c
        }
    };
    c.env("RUSTYDB_FAILPOINTS", failpoints)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

fn args(dir: &Path, port: u16, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        dir.to_str().unwrap(),
        "--admin-token",
        TOKEN,
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

impl Server {
    /// Starts a server on `dir` and waits until it answers.
    fn start(dir: &Path, extra: &[&str], failpoints: &str) -> Server {
        let port = free_port();
        let child = command(&args(dir, port, extra), failpoints)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut s = Server { child, port };
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("the server exited while starting: {st}");
            }
            if let Ok((200, _)) = http(port, "GET", "/api/v1/admin/health", None) {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "no answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sql(&self, sql: &str) -> Value {
        sql_at(self.port, sql, None).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to end (a failpoint killed it); its status.
    fn wait_dead(mut self, within: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if t0.elapsed() > within {
                let _ = self.child.kill();
                panic!("the server did not die at its failpoint");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and a clean stop.
    fn stop(mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{st}");
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, body.to_string()))
}

/// A statement; `Err` when there was no 2xx answer.
fn sql_at(port: u16, sql: &str, txn: Option<u64>) -> Result<Value, String> {
    let mut b = json!({ "sql": sql });
    if let Some(t) = txn {
        b["transaction_id"] = json!(t);
    }
    match http(port, "POST", "/api/v1/query", Some(&b.to_string())) {
        Ok((s, body)) if (200..300).contains(&s) => Ok(serde_json::from_str(&body).unwrap()),
        Ok((s, body)) => Err(format!("{s}: {body}")),
        Err(e) => Err(e.to_string()),
    }
}

fn post(port: u16, path: &str) -> Result<Value, String> {
    match http(port, "POST", path, Some("{}")) {
        Ok((s, body)) if (200..300).contains(&s) => Ok(serde_json::from_str(&body).unwrap()),
        Ok((s, body)) => Err(format!("{s}: {body}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Reads every page of the data file through a buffer pool (which checks
/// each page's checksum); returns the pages that fail.
fn bad_pages(dir: &Path) -> Vec<(u64, String)> {
    let disk = FileDisk::options()
        .create(false)
        .open(dir.join("rustydb.pages"))
        .unwrap();
    let n = disk.num_pages();
    let pool = BufferPool::builder().frames(64).disk(disk).build().unwrap();
    (0..n)
        .filter_map(|id| pool.fetch_read(id).err().map(|e| (id, e.to_string())))
        .collect()
}

fn count(s: &Server, table: &str) -> i64 {
    s.sql(&format!("SELECT COUNT(*) FROM {table}"))["rows"][0][0]
        .as_i64()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Random kills under a concurrent write load

#[derive(Debug, Clone, PartialEq)]
enum Change {
    Put(i64, String),
    Del(i64),
}

type Rows = BTreeMap<i64, String>;

fn apply(m: &mut Rows, ch: &[Change]) {
    for c in ch {
        match c {
            Change::Put(k, v) => {
                m.insert(*k, v.clone());
            }
            Change::Del(k) => {
                m.remove(k);
            }
        }
    }
}

/// One writer's acknowledged state and its commit in flight at the kill.
#[derive(Debug, Default, Clone)]
struct Writer {
    w: i64,
    rows: Rows,
    next: i64,
    uncertain: Option<Vec<Change>>,
    acked: u64,
    rolled_back: u64,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

impl Writer {
    fn key(&mut self) -> i64 {
        self.next += 1;
        self.w * 10_000_000 + self.next
    }

    /// One statement's text and its changes, against `shadow`.
    fn statement(&mut self, rng: &mut Rng, shadow: &Rows, op: u64) -> (String, Vec<Change>) {
        let w = self.w;
        let pick = |rng: &mut Rng| {
            let n = shadow.len() as u64;
            (n > 0).then(|| *shadow.keys().nth(rng.next(n) as usize).unwrap())
        };
        let tag = rng.next(1 << 30);
        match (op, pick(rng)) {
            (0, Some(k)) => {
                let v = format!("u{tag}-{}", "y".repeat(rng.next(300) as usize));
                (
                    format!("UPDATE kv SET v = '{v}' WHERE id = {k}"),
                    vec![Change::Put(k, v)],
                )
            }
            (1, Some(k)) => (
                format!("DELETE FROM kv WHERE id = {k}"),
                vec![Change::Del(k)],
            ),
            _ => {
                let n = 1 + rng.next(3);
                let mut vals = Vec::new();
                let mut ch = Vec::new();
                for _ in 0..n {
                    let k = self.key();
                    let v = format!("i{tag}-{}", "x".repeat(rng.next(600) as usize));
                    vals.push(format!("({k}, {w}, '{v}')"));
                    ch.push(Change::Put(k, v));
                }
                (format!("INSERT INTO kv VALUES {}", vals.join(", ")), ch)
            }
        }
    }

    /// Runs operations until the server stops answering.
    fn run(mut self, port: u16, seed: u64) -> Writer {
        let mut rng = Rng(seed | 1);
        loop {
            // Keep each writer's rows around a few hundred.
            let bias = if self.rows.len() > 300 { 3 } else { 2 };
            let op = rng.next(10);
            if op < 6 {
                let kind = rng.next(bias);
                let (sql, ch) = self.statement(&mut rng, &self.rows.clone(), kind);
                match sql_at(port, &sql, None) {
                    Ok(_) => {
                        apply(&mut self.rows, &ch);
                        self.acked += 1;
                    }
                    Err(e) if is_refused(&e) => return self,
                    Err(_) => {
                        self.uncertain = Some(ch);
                        return self;
                    }
                }
            } else {
                // A transaction of 2–8 statements (sometimes 100 inserts),
                // committed or rolled back.
                let Ok(t) = post(port, "/api/v1/transactions") else {
                    return self;
                };
                let id = t["transaction_id"].as_u64().unwrap();
                let mut shadow = self.rows.clone();
                let mut all = Vec::new();
                let big = rng.next(8) == 0;
                let n = if big { 100 } else { 2 + rng.next(7) };
                for _ in 0..n {
                    let kind = if big { 2 } else { rng.next(bias) };
                    let (sql, ch) = self.statement(&mut rng, &shadow, kind);
                    if sql_at(port, &sql, Some(id)).is_err() {
                        // Died mid-transaction (nothing of it may survive),
                        // or refused: roll back and go on.
                        if post(port, &format!("/api/v1/transactions/{id}/rollback")).is_err() {
                            return self;
                        }
                        all.clear();
                        break;
                    }
                    apply(&mut shadow, &ch);
                    all.extend(ch);
                }
                if all.is_empty() {
                    continue;
                }
                if rng.next(4) == 0 {
                    if post(port, &format!("/api/v1/transactions/{id}/rollback")).is_err() {
                        return self;
                    }
                    self.rolled_back += 1;
                    continue;
                }
                match post(port, &format!("/api/v1/transactions/{id}/commit")) {
                    Ok(_) => {
                        self.rows = shadow;
                        self.acked += 1;
                    }
                    Err(e) if is_refused(&e) => return self,
                    Err(_) => {
                        self.uncertain = Some(all);
                        return self;
                    }
                }
            }
        }
    }

    /// Checks the rows found after a restart; resolves the commit in flight.
    fn check(&mut self, found: &Rows) -> Option<bool> {
        let committed = self.uncertain.take().map(|ch| {
            let mut with = self.rows.clone();
            apply(&mut with, &ch);
            if *found == with {
                self.rows = with;
                true
            } else {
                false
            }
        });
        assert_eq!(
            *found, self.rows,
            "writer {}: the rows after the restart differ from the acknowledged ones",
            self.w
        );
        committed
    }
}

fn is_refused(e: &str) -> bool {
    e.contains("refused")
}

#[test]
fn random_kills_under_load_lose_no_acknowledged_commit() {
    let iterations: usize = std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = temp_dir("random");
    // A small pool and frequent checkpoints: evictions of uncommitted pages,
    // full-page images and log truncation all happen under the load.
    let extra = [
        "--buffer-pool-pages",
        "48",
        "--checkpoint-wal-bytes",
        "256KiB",
        "--checkpoint-interval-secs",
        "1",
    ];
    let s = Server::start(&dir, &extra, "");
    s.sql("CREATE TABLE kv (id INTEGER PRIMARY KEY, w INTEGER, v TEXT)");
    s.kill();
    let mut writers: Vec<Writer> = (0..4)
        .map(|w| Writer {
            w,
            ..Default::default()
        })
        .collect();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let (mut acked, mut resolved, mut kept, mut rolled_back) = (0, 0, 0, 0);
    let t0 = Instant::now();
    for it in 0..iterations {
        let bad = bad_pages(&dir);
        assert!(
            bad.is_empty(),
            "iteration {it}: pages fail their checksum: {bad:?}"
        );
        let s = Server::start(&dir, &extra, "");
        let rows = s.sql("SELECT id, w, v FROM kv")["rows"].clone();
        let mut found: Vec<Rows> = vec![Rows::new(); writers.len()];
        for r in rows.as_array().unwrap() {
            let w = r[1].as_i64().unwrap() as usize;
            found[w].insert(r[0].as_i64().unwrap(), r[2].as_str().unwrap().to_string());
        }
        for (w, f) in writers.iter_mut().zip(&found) {
            if let Some(c) = w.check(f) {
                resolved += 1;
                kept += u64::from(c);
            }
        }
        let port = s.port;
        let handles: Vec<_> = writers
            .drain(..)
            .map(|w| {
                let seed = rng.next(u64::MAX);
                std::thread::spawn(move || w.run(port, seed))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + rng.next(450)));
        s.kill();
        for h in handles {
            let w = h.join().unwrap();
            writers.push(w);
        }
        writers.sort_by_key(|w| w.w);
        acked = writers.iter().map(|w| w.acked).sum::<u64>();
        rolled_back = writers.iter().map(|w| w.rolled_back).sum::<u64>();
    }
    // The last restart's check, then a clean stop: every page verifies.
    let s = Server::start(&dir, &extra, "");
    let rows = s.sql("SELECT id, w, v FROM kv")["rows"].clone();
    let mut found: Vec<Rows> = vec![Rows::new(); writers.len()];
    for r in rows.as_array().unwrap() {
        let w = r[1].as_i64().unwrap() as usize;
        found[w].insert(r[0].as_i64().unwrap(), r[2].as_str().unwrap().to_string());
    }
    for (w, f) in writers.iter_mut().zip(&found) {
        if let Some(c) = w.check(f) {
            resolved += 1;
            kept += u64::from(c);
        }
    }
    s.stop();
    assert!(bad_pages(&dir).is_empty());
    assert!(
        acked > iterations as u64 * 4,
        "too little load: {acked} commits"
    );
    eprintln!(
        "{iterations} kills in {:.1} s: {acked} acknowledged commits all present, {rolled_back} rollbacks, \
         {resolved} commits in flight at a kill ({kept} of them durable)",
        t0.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Fixed cases

/// The case: 1 committed row, then a transaction of 1 499 rows of
/// 1 KB on a 64-page pool (its pages are evicted before it ends), killed
/// before COMMIT: after the restart, 1 row.
#[test]
fn a_transaction_larger_than_the_pool_killed_before_commit_leaves_nothing() {
    let dir = temp_dir("big");
    let s = Server::start(&dir, &["--buffer-pool-pages", "64"], "");
    s.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    s.sql("INSERT INTO t VALUES (0, 'committed')");
    let id = post(s.port, "/api/v1/transactions").unwrap()["transaction_id"]
        .as_u64()
        .unwrap();
    let pad = "p".repeat(1000);
    for i in 1..1500 {
        sql_at(
            s.port,
            &format!("INSERT INTO t VALUES ({i}, '{pad}')"),
            Some(id),
        )
        .unwrap();
    }
    let pages = std::fs::metadata(dir.join("rustydb.pages")).unwrap().len() / 4096;
    assert!(
        pages > 100,
        "the transaction's pages reached the file: {pages}"
    );
    s.kill();
    assert!(bad_pages(&dir).is_empty());
    let s = Server::start(&dir, &["--buffer-pool-pages", "64"], "");
    assert_eq!(count(&s, "t"), 1);
    assert_eq!(s.sql("SELECT v FROM t")["rows"], json!([["committed"]]));
    // The pages it took are reused, not leaked.
    s.sql(&format!("INSERT INTO t VALUES (1, '{pad}')"));
    s.stop();
    assert!(bad_pages(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A data directory with table `t` holding rows 0..10.
fn prepared(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    let s = Server::start(&dir, &["--buffer-pool-pages", "32"], "");
    s.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    let vals: Vec<String> = (0..10).map(|i| format!("({i}, 'before')")).collect();
    s.sql(&format!("INSERT INTO t VALUES {}", vals.join(", ")));
    s.stop();
    dir
}

/// Runs a transaction of 600 inserts and 10 updates (more pages than the
/// pool) that a failpoint kills during its commit; returns the rows after
/// the restart.
fn killed_commit(dir: &Path, failpoint: &str) -> (i64, i64) {
    let s = Server::start(dir, &["--buffer-pool-pages", "32"], failpoint);
    let id = post(s.port, "/api/v1/transactions").unwrap()["transaction_id"]
        .as_u64()
        .unwrap();
    let pad = "c".repeat(500);
    for i in 0..60 {
        let vals: Vec<String> = (0..10)
            .map(|j| format!("({}, '{pad}')", 100 + i * 10 + j))
            .collect();
        sql_at(
            s.port,
            &format!("INSERT INTO t VALUES {}", vals.join(", ")),
            Some(id),
        )
        .unwrap();
    }
    sql_at(s.port, "UPDATE t SET v = 'after' WHERE id < 10", Some(id)).unwrap();
    let r = post(s.port, &format!("/api/v1/transactions/{id}/commit"));
    assert!(r.is_err(), "the commit was answered: {r:?}");
    s.wait_dead(Duration::from_secs(60));
    assert!(bad_pages(dir).is_empty());
    let s = Server::start(dir, &["--buffer-pool-pages", "32"], "");
    let n = count(&s, "t");
    let after = s.sql("SELECT COUNT(*) FROM t WHERE v = 'after'")["rows"][0][0]
        .as_i64()
        .unwrap();
    s.stop();
    assert!(bad_pages(dir).is_empty());
    (n, after)
}

#[test]
fn a_kill_in_the_middle_of_a_commit_leaves_all_or_nothing() {
    // Before the commit record: nothing.
    let dir = prepared("commit-a");
    assert_eq!(killed_commit(&dir, "commit-before-log"), (10, 0));
    let _ = std::fs::remove_dir_all(&dir);
    // Commit record buffered, maybe written by the flusher: all or nothing.
    let dir = prepared("commit-b");
    let r = killed_commit(&dir, "commit-after-log");
    assert!(r == (10, 0) || r == (610, 10), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
    // Durable, not yet answered: all.
    let dir = prepared("commit-c");
    assert_eq!(killed_commit(&dir, "commit-after-flush"), (610, 10));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A page write cut in half (the failpoint writes half a page of an existing
/// page and kills the process): the checksum finds the torn page, and
/// recovery rebuilds it from the full-page image the log holds.
#[test]
fn a_torn_page_write_is_recovered() {
    let dir = temp_dir("torn");
    let s = Server::start(&dir, &["--buffer-pool-pages", "16"], "");
    s.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    for b in 0..20 {
        let vals: Vec<String> = (0..100)
            .map(|i| format!("({}, 'v0-{}')", b * 100 + i, "o".repeat(100)))
            .collect();
        s.sql(&format!("INSERT INTO t VALUES {}", vals.join(", ")));
    }
    s.stop();
    let s = Server::start(&dir, &["--buffer-pool-pages", "16"], "torn-page-write=5");
    let mut acked = BTreeMap::new();
    for round in 1.. {
        let id = (round * 37) % 2000;
        match sql_at(
            s.port,
            &format!("UPDATE t SET v = 'v{round}' WHERE id = {id}"),
            None,
        ) {
            Ok(_) => {
                acked.insert(id, format!("v{round}"));
            }
            Err(_) => break,
        }
        assert!(round < 100_000, "the failpoint never fired");
    }
    s.wait_dead(Duration::from_secs(60));
    let bad = bad_pages(&dir);
    assert_eq!(bad.len(), 1, "one torn page: {bad:?}");
    let s = Server::start(&dir, &["--buffer-pool-pages", "16"], "");
    assert_eq!(count(&s, "t"), 2000);
    for (id, v) in &acked {
        let r = s.sql(&format!("SELECT v FROM t WHERE id = {id}"));
        assert_eq!(r["rows"], json!([[v]]), "row {id}");
    }
    s.stop();
    assert!(bad_pages(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_servers_cannot_share_a_data_directory() {
    let dir = temp_dir("lock");
    let a = Server::start(&dir, &[], "");
    let out = command(&args(&dir, free_port(), &[]), "")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another server") && err.contains("LOCK"),
        "{err}"
    );
    // The first server is untouched and still answers.
    a.sql("CREATE TABLE still_mine (id INTEGER)");
    a.stop();
    // Once it is gone, the directory opens again.
    let b = Server::start(&dir, &[], "");
    assert_eq!(count(&b, "still_mine"), 0);
    b.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
