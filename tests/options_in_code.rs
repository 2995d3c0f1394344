//! Options set in code on the `#[global_allocator]` static are in effect, and a
//! `RUSTYDB_MEM_*` variable that is set overrides its option: child processes
//! (this test binary, re-run on its ignored `child` test, with the variables
//! cleared or set) report what they observe through `stats()`.

use rustydb_memory::{Options, RustyAlloc};
use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;

const OPTIONS: Options = Options::new()
    .magazine(5)
    .large_threshold(64 << 10)
    .large_cache(0)
    .purge_delay_ms(60_000);
const _: () = assert!(OPTIONS.is_valid());

#[global_allocator]
static GLOBAL: RustyAlloc = RustyAlloc::with_options(OPTIONS);

/// A size whose class nothing else in the child uses (the 3 KiB-ish class,
/// whose magazines would hold 42 rounds by default).
const SMALL: usize = 2_900;
/// Between the code threshold (64 KiB) and the default one (256 KiB).
const MID: usize = 100_000;
/// A large block under any threshold.
const BIG: usize = 1 << 20;

#[test]
#[ignore = "the child process of the tests below"]
fn child() {
    let small = Layout::from_size_align(SMALL, 8).unwrap();
    // SAFETY: non-zero layouts; every block is freed once with its layout.
    unsafe {
        let blocks: Vec<*mut u8> = (0..400).map(|_| GLOBAL.alloc(small)).collect();
        for p in blocks {
            GLOBAL.dealloc(p, small);
        }
    }
    let s = GLOBAL.stats();
    let class = s.classes.iter().find(|c| c.size >= SMALL).unwrap();
    assert!(class.depot_full > 0, "{class:?}");
    let rounds = class.depot_objects / class.depot_full;

    let mid = Layout::from_size_align(MID, 8).unwrap();
    let before = GLOBAL.stats().large.live;
    // SAFETY: as above.
    let p = unsafe { GLOBAL.alloc(mid) };
    let mid_large = GLOBAL.stats().large.live - before;
    // SAFETY: `p` is live, freed once with its layout.
    unsafe { GLOBAL.dealloc(p, mid) };

    let big = Layout::from_size_align(BIG, 8).unwrap();
    // SAFETY: as above.
    unsafe { GLOBAL.dealloc(GLOBAL.alloc(big), big) };
    let cached = GLOBAL.stats().large.cached;
    println!("\nFIGURES rounds={rounds} mid_large={mid_large} cached={cached}");
}

/// Runs the child with `env` (every other `RUSTYDB_MEM_*` variable removed) and
/// returns its (rounds per full magazine, whether a MID block went to the
/// large allocator, large blocks cached after one was freed).
fn run_child(env: &[(&str, &str)]) -> (usize, usize, usize) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "child",
        "--test-threads=1",
        "--nocapture",
    ]);
    for (k, _) in std::env::vars() {
        if k.starts_with("RUSTYDB_MEM_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| Some(&l[l.find("FIGURES ")? + 8..]))
        .unwrap_or_else(|| panic!("no figures in:\n{stdout}"));
    let field = |name: &str| -> usize {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    (field("rounds"), field("mid_large"), field("cached"))
}

#[test]
fn options_in_code_are_in_effect() {
    let (rounds, mid_large, cached) = run_child(&[]);
    assert_eq!(rounds, 5, "full magazines hold `magazine` rounds");
    assert_eq!(mid_large, 1, "100 000 bytes ≥ the 64 KiB threshold: large");
    assert_eq!(cached, 0, "large_cache(0): no large block is kept");
}

#[test]
fn environment_overrides_options_in_code() {
    let (rounds, mid_large, cached) = run_child(&[
        ("RUSTYDB_MEM_MAGAZINE", "7"),
        ("RUSTYDB_MEM_LARGE_THRESHOLD", "256k"),
        ("RUSTYDB_MEM_LARGE_CACHE", "64m"),
    ]);
    assert_eq!(rounds, 7);
    assert_eq!(mid_large, 0, "below the 256 KiB threshold: a size class");
    assert_eq!(cached, 1);
}

#[test]
fn out_of_range_values_clamp_as_the_variables_do() {
    // The variable clamps (100 → 64; the class's own cap, 42, is lower).
    let (rounds, _, _) = run_child(&[("RUSTYDB_MEM_MAGAZINE", "100")]);
    assert_eq!(rounds, 42);
    assert!(Options::new().magazine(100).validate().is_err());
}
