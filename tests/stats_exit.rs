//! `RUSTYDB_MEM_STATS=1` prints the allocator's report at exit: a child
//! process (this test binary, re-run on its ignored `child` test) leaks known
//! blocks, prints its own `stats()` on stdout, and exits; the table it prints
//! on stderr at exit must show the same figures.

use rustydb_memory::RustyAlloc;

#[global_allocator]
static GLOBAL: RustyAlloc = RustyAlloc::new();

/// 20 000-byte blocks fall in the 20 480-byte class, which nothing else in
/// this process uses.
const SMALL: usize = 20_000;
const CLASS: usize = 20_480;
const SMALL_BLOCKS: usize = 37;
const LARGE: usize = 3 << 20;
const LARGE_BLOCKS: usize = 3;

#[test]
#[ignore = "the child process of `report_at_exit_matches_stats`"]
fn child() {
    for _ in 0..SMALL_BLOCKS {
        std::mem::forget(vec![1u8; SMALL]);
    }
    for _ in 0..LARGE_BLOCKS {
        std::mem::forget(vec![2u8; LARGE]);
    }
    println!("SNAPSHOT-BEGIN\n{}SNAPSHOT-END", GLOBAL.stats());
}

/// The `live objects` and `slabs` columns of the class row, and the live large
/// count, from a report.
fn figures(report: &str) -> (usize, usize, usize) {
    let row = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&CLASS.to_string()))
        .unwrap_or_else(|| panic!("no row for class {CLASS} in:\n{report}"));
    let cols: Vec<usize> = row
        .split_whitespace()
        .take(3)
        .map(|c| c.parse().unwrap())
        .collect();
    let large = report
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("large: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no large line in:\n{report}"));
    (cols[1], cols[2], large)
}

#[test]
fn report_at_exit_matches_stats() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("RUSTYDB_MEM_STATS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let snapshot = stdout
        .split("SNAPSHOT-BEGIN\n")
        .nth(1)
        .and_then(|s| s.split("SNAPSHOT-END").next())
        .expect("the child printed its snapshot");
    let at_exit = &stderr[stderr
        .find("rustydb-memory allocator")
        .unwrap_or_else(|| panic!("no report on stderr:\n{stderr}"))..];

    let (live, slabs, large) = figures(snapshot);
    assert_eq!(live, SMALL_BLOCKS);
    assert!(slabs >= 1);
    assert_eq!(large, LARGE_BLOCKS);
    assert_eq!(
        figures(at_exit),
        (live, slabs, large),
        "exit report:\n{at_exit}"
    );
}

#[test]
fn no_report_without_the_variable() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child", "--test-threads=1"])
        .env_remove("RUSTYDB_MEM_STATS")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("rustydb-memory allocator"));
}
