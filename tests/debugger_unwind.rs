//! The stack walkers agree: in this test binary (built without frame
//! pointers) the cached DWARF unwinder and libgcc's give the same stacks and
//! `Unwind::Auto` settles on DWARF; in a child program the test compiles with
//! `-C force-frame-pointers=yes`, frame-pointer and DWARF stacks are the same
//! and `Unwind::Auto` settles on frame pointers.
//!
//! "The same stack" is checked the strict way: blocks allocated from one call
//! site under two walkers must land in one leak group (one stack id).
//!
//! One test function: the walker is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustydb_memory::debug::{self, DebugAlloc, DebugLevel, LeakScope, Unwind};

static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);

fn l() -> Layout {
    Layout::from_size_align(48, 8).unwrap()
}

/// A call chain deeper than the 12 frames kept, so every kept frame is ours.
#[inline(never)]
fn deep(n: u32, out: &mut Vec<usize>) {
    if n == 0 {
        // SAFETY: non-zero size; freed below with the same layout.
        out.push(unsafe { D.alloc(l()) } as usize);
    } else {
        deep(n - 1, out);
    }
    std::hint::black_box(&out); // not a tail call
}

/// Whether this binary was built with AddressSanitizer (`-Zsanitizer=address`).
///
/// Read from the flags it was compiled with: rustc inherits cargo's
/// environment, so `RUSTFLAGS` (or the encoded form) is visible to
/// `option_env!`. A run-time probe does not work: Rust links the ASan runtime
/// statically and `dlsym("__asan_init")` finds nothing.
fn built_with_asan() -> bool {
    const FLAGS: [Option<&str>; 2] = [
        option_env!("RUSTFLAGS"),
        option_env!("CARGO_ENCODED_RUSTFLAGS"),
    ];
    FLAGS
        .iter()
        .flatten()
        .any(|f| f.contains("sanitizer=address"))
}

#[test]
fn walkers_agree_here_and_with_frame_pointers_in_a_child() {
    D.set_sample_every(0);
    let mut blocks = Vec::new();
    // Auto settles on DWARF in a binary without frame pointers.
    debug::set_unwind(Unwind::Auto);
    for _ in 0..10 {
        deep(20, &mut blocks);
    }
    // AddressSanitizer builds (CI runs the tests under it) force frame
    // pointers everywhere, so there Auto must find them.
    let expected = if built_with_asan() {
        Unwind::FramePointers
    } else {
        Unwind::Dwarf
    };
    assert_eq!(debug::unwind(), expected);
    for u in [Unwind::Dwarf, Unwind::Libgcc] {
        let mark = D.mark();
        debug::set_unwind(Unwind::Dwarf);
        deep(20, &mut blocks);
        debug::set_unwind(u);
        deep(20, &mut blocks);
        let r = D.leaks_since(mark, LeakScope::CurrentThread);
        assert_eq!(r.count, 2);
        assert_eq!(r.groups.len(), 1, "DWARF and {u:?} stacks differ: {r}");
        assert!(
            r.groups[0]
                .site
                .iter()
                .filter(|f| f.contains("deep"))
                .count()
                >= 8,
            "{r}"
        );
    }
    debug::set_unwind(Unwind::Auto);
    for p in blocks {
        // SAFETY: allocated from D with this layout.
        unsafe { D.dealloc(p as *mut u8, l()) };
    }

    // The frame-pointer child. Under ASan this binary already has frame
    // pointers (checked above); the release run builds and checks the child.
    if built_with_asan() {
        return;
    }
    let Some(child) = build_fp_child() else {
        panic!("could not build the frame-pointer child (rustc and the crate's rlib are needed)");
    };
    let out = Command::new(&child).output().expect("run the child");
    if let Some(dir) = child.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("auto chose FramePointers"), "{stdout}");
    assert!(stdout.contains("fp and dwarf agree"), "{stdout}");
}

const CHILD: &str = r#"
use std::alloc::{GlobalAlloc, Layout, System};
use rustydb_memory::debug::{self, DebugAlloc, DebugLevel, LeakScope, Unwind};

static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);

#[inline(never)]
fn deep(n: u32, out: &mut Vec<usize>) {
    if n == 0 {
        // SAFETY: a non-zero size; the block is freed once by the caller.
        out.push(unsafe { D.alloc(Layout::from_size_align(48, 8).unwrap()) } as usize);
    } else {
        deep(n - 1, out);
    }
    std::hint::black_box(&out);
}

fn main() {
    D.set_sample_every(0);
    let mut v = Vec::new();
    debug::set_unwind(Unwind::Auto);
    for _ in 0..10 {
        deep(20, &mut v);
    }
    println!("auto chose {:?}", debug::unwind());
    let mark = D.mark();
    debug::set_unwind(Unwind::FramePointers);
    deep(20, &mut v);
    debug::set_unwind(Unwind::Dwarf);
    deep(20, &mut v);
    let r = D.leaks_since(mark, LeakScope::CurrentThread);
    let deep_frames = r.groups.first().map_or(0, |g| g.site.iter().filter(|f| f.contains("deep")).count());
    if r.count == 2 && r.groups.len() == 1 && deep_frames >= 8 {
        println!("fp and dwarf agree ({deep_frames} frames of `deep`)");
    } else {
        println!("fp and dwarf differ: {r}");
    }
}
"#;

/// Compiles `CHILD` with frame pointers against this crate's rlib (next to
/// the test binary in `target/<profile>/deps`).
fn build_fp_child() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    let rlib = newest(deps, "librustydb_memory-", ".rlib")?;
    let dir = std::env::temp_dir().join(format!("rustydb_fp_child_{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let src = dir.join("main.rs");
    std::fs::write(&src, CHILD).ok()?;
    let bin = dir.join("fp_child");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "-O",
            "-g",
            "-C",
            "force-frame-pointers=yes",
        ])
        .arg("--extern")
        .arg(format!("rustydb_memory={}", rlib.display()))
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("rustc: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(bin)
}

fn newest(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}
