"""Part of scripts/real-programs: the pinned programs, getting their sources, and
building each one four times, once per global allocator.

Nothing is copied into the repository: sources are unpacked under the work
directory (crates.io packages through `cargo fetch` of a scratch crate, jaq with
`git archive` from a checkout given on the command line) and patched there."""

import glob
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The allocators, in the order of the tables; glibc is the program unmodified.
ALLOCS = ["glibc", "mimalloc", "jemalloc", "ours"]
MIMALLOC = "0.1.52"
JEMALLOC = "0.7.0"  # tikv-jemallocator (jemalloc 5.3.0)
DEPS = {
    "mimalloc": ("mimalloc", f'version = "={MIMALLOC}"\ndefault-features = false\n',
                 "::mimalloc::MiMalloc"),
    "jemalloc": ("tikv-jemallocator", f'version = "={JEMALLOC}"\n',
                 "::tikv_jemallocator::Jemalloc"),
    "ours": ("rustydb-memory", f'path = "{ROOT}"\ndefault-features = false\n',
             "::rustydb_memory::RustyAlloc"),
}
ALLOC_CRATES = {"mimalloc", "libmimalloc-sys", "tikv-jemallocator", "tikv-jemalloc-sys",
                "rustydb-memory"}

JAQ_TAG = "v3.0.0"
JAQ_COMMIT = "6cdaff04c45c47b0621be9c13223508831fd9b8f"
RIPGREP = "14.1.1"
SERDE_JSON = "1.0.154"

# name -> how to build it. `dir`: the package's directory inside the source tree;
# `main`: its main.rs; `package`/`bin`: cargo's -p and --bin; `own`: allocators the
# program already selects behind a feature (feature name); `nodefault`: build with
# --no-default-features (jaq's default feature is its own mimalloc).
PROGRAMS = {
    "jaq": {"version": f"{JAQ_TAG} ({JAQ_COMMIT[:12]})", "dir": "jaq",
            "main": "jaq/src/main.rs", "package": "jaq", "bin": "jaq",
            "own": {"mimalloc": "mimalloc"}, "nodefault": True},
    "ripgrep": {"version": RIPGREP, "dir": ".", "main": "crates/core/main.rs",
                "package": "ripgrep", "bin": "rg", "own": {}, "nodefault": False,
                # Its musl-only jemallocator 0.5 links `jemalloc` too: cargo resolves
                # every target's dependencies, so the jemalloc variant drops it.
                "drop": {"jemalloc": r"\[target\.'cfg\(all\(target_env = \"musl\".*"
                                     r"\.dependencies\.jemallocator\]\nversion = \"[^\"]*\"\n"}},
    "serde_json": {"version": SERDE_JSON, "dir": ".", "main": "src/main.rs",
                   "package": "json-roundtrip", "bin": "json-roundtrip", "own": {},
                   "nodefault": False},
}

DRIVER_TOML = f"""[package]
name = "json-roundtrip"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
serde_json = "={SERDE_JSON}"

[profile.release]
debug = 1
"""

# A round trip of a large generated document through serde_json's `Value`:
# generate, print, then 4 times parse, transform (drop, insert, reverse, upper-case),
# index by tag and print again (pretty, then compact); prints a digest of the text.
DRIVER_MAIN = r"""use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

const WORDS: [&str; 16] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
    "hotel", "india", "juliett", "kilo", "lima", "mike", "november", "oscar", "papa"];

fn document(n: usize) -> Value {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut items = Vec::new();
    for i in 0..n {
        let mut o = Map::new();
        o.insert("id".into(), Value::from(i as u64));
        o.insert("name".into(), Value::from(format!("user{}-{:x}", i, r.next() & 0xff_ffff)));
        let k = r.next() % 8;
        let tags: Vec<Value> =
            (0..k).map(|_| Value::from(format!("t{}", r.next() % 50))).collect();
        o.insert("tags".into(), Value::Array(tags));
        o.insert("score".into(), Value::from((r.next() % 1_000_000) as f64 / 1000.0));
        let words = 2 + (r.next() % 20) as usize;
        let mut text = String::new();
        for w in 0..words {
            if w > 0 {
                text.push(' ');
            }
            text.push_str(WORDS[(r.next() % 16) as usize]);
        }
        let mut nested = Map::new();
        nested.insert("a".into(), json!([i, i * 2, {"b": i.to_string()}]));
        nested.insert("text".into(), Value::from(text));
        o.insert("nested".into(), Value::Object(nested));
        items.push(Value::Object(o));
    }
    Value::Array(items)
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args[2].parse().unwrap();
    if args[1] == "gen" {
        let out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer(out, &document(n)).unwrap();
        return;
    }
    let mut text = serde_json::to_string(&document(n)).unwrap();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for round in 0..4u64 {
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let items = v.as_array_mut().unwrap();
        items.retain(|o| o["id"].as_u64().unwrap() % 11 != round);
        for o in items.iter_mut() {
            let m = o.as_object_mut().unwrap();
            m.insert(format!("r{}", round), Value::from(round));
            if let Some(Value::Array(t)) = m.get_mut("tags") {
                t.reverse();
                t.push(Value::from(format!("round{}", round)));
            }
            if let Some(Value::Object(nm)) = m.get_mut("nested") {
                let s = nm["text"].as_str().unwrap().to_uppercase();
                nm.insert("text".into(), Value::from(s));
            }
        }
        let mut index: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for o in items.iter() {
            for t in o["tags"].as_array().unwrap() {
                index.entry(t.as_str().unwrap().to_string()).or_default()
                    .push(o["id"].as_u64().unwrap());
            }
        }
        for (k, ids) in &index {
            h = fnv(h, k.as_bytes());
            h = fnv(h, &(ids.len() as u64).to_le_bytes());
        }
        text = if round % 2 == 0 {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        };
        h = fnv(h, text.as_bytes());
    }
    writeln!(std::io::stdout(), "{:016x} {}", h, text.len()).unwrap();
}
"""


def run(cmd, **kw):
    print("# $ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kw)


def registry_source(work, name, version):
    """Unpacks `name`=`version` from crates.io (cargo fetch of a scratch crate)."""
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    pattern = os.path.join(cargo_home, "registry", "src", "*", f"{name}-{version}")
    found = glob.glob(pattern)
    if not found:
        scratch = os.path.join(work, "fetch", name)
        os.makedirs(os.path.join(scratch, "src"), exist_ok=True)
        with open(os.path.join(scratch, "Cargo.toml"), "w") as f:
            f.write(f'[package]\nname = "fetch-{name}"\nversion = "0.0.0"\nedition = "2021"\n'
                    f'[dependencies]\n{name} = "={version}"\n')
        with open(os.path.join(scratch, "src", "main.rs"), "w") as f:
            f.write("fn main() {}\n")
        run(["cargo", "fetch", "--quiet"], cwd=scratch)
        found = glob.glob(pattern)
    if not found:
        sys.exit(f"{name} {version}: not found under {pattern} after cargo fetch")
    return found[0]


def jaq_source(checkout, dest):
    if not checkout:
        sys.exit("jaq needs --jaq-checkout PATH (git clone https://github.com/01mf02/jaq)")
    git = ["git", "-C", checkout]
    tag = subprocess.run(git + ["rev-parse", "--verify", "-q", JAQ_TAG + "^{commit}"],
                         capture_output=True, text=True).stdout.strip()
    if tag and tag != JAQ_COMMIT:
        sys.exit(f"jaq: tag {JAQ_TAG} is {tag} in {checkout}, expected {JAQ_COMMIT}")
    if subprocess.run(git + ["cat-file", "-e", JAQ_COMMIT + "^{commit}"]).returncode:
        sys.exit(f"jaq: commit {JAQ_COMMIT} ({JAQ_TAG}) not in {checkout}; git fetch --tags")
    os.makedirs(dest)
    archive = subprocess.run(git + ["archive", "--format=tar", JAQ_COMMIT], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)


def source(work, prog, jaq_checkout):
    """The pristine source tree of `prog` under work/<prog>/src (made once)."""
    dest = os.path.join(work, prog, "src")
    if os.path.exists(os.path.join(dest, ".real-programs-pristine")):
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    if prog == "jaq":
        jaq_source(jaq_checkout, dest)
    elif prog == "ripgrep":
        shutil.copytree(registry_source(work, "ripgrep", RIPGREP), dest)
    elif prog == "serde_json":
        os.makedirs(os.path.join(dest, "src"))
        with open(os.path.join(dest, "Cargo.toml"), "w") as f:
            f.write(DRIVER_TOML)
        with open(os.path.join(dest, "src", "main.rs"), "w") as f:
            f.write(DRIVER_MAIN)
    spec = PROGRAMS[prog]
    for rel in (os.path.join(spec["dir"], "Cargo.toml"), spec["main"], "Cargo.lock"):
        p = os.path.join(dest, rel)
        if os.path.exists(p):
            shutil.copy2(p, p + ".pristine")
    open(os.path.join(dest, ".real-programs-pristine"), "w").close()
    return dest


def lock_pairs(path):
    text = open(path).read()
    return set(re.findall(r'name = "([^"]+)"\nversion = "([^"]+)"', text))


def build(work, prog, jaq_checkout):
    """Builds work/bin/<prog>-<alloc> for the four allocators; returns notes."""
    spec = PROGRAMS[prog]
    src = source(work, prog, jaq_checkout)
    manifest = os.path.join(src, spec["dir"], "Cargo.toml")
    main_rs = os.path.join(src, spec["main"])
    lock = os.path.join(src, "Cargo.lock")
    shipped_lock = os.path.exists(lock + ".pristine")
    target = os.path.join(work, prog, "target")
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir, exist_ok=True)
    notes = []
    for alloc in ALLOCS:
        for p in (manifest, main_rs, lock):
            if os.path.exists(p + ".pristine"):
                shutil.copy(p + ".pristine", p)
            elif os.path.exists(p):
                os.remove(p)  # a lock cargo wrote for another variant
        cmd = ["cargo", "build", "--release", "-p", spec["package"], "--bin", spec["bin"]]
        if spec["nodefault"]:
            cmd.append("--no-default-features")
        if alloc in spec["own"]:
            # The program's own feature; pin the allocator crate to the others' version.
            text = open(manifest).read()
            text, k = re.subn(r'(?m)^mimalloc = \{ version = "[^"]*"',
                              f'mimalloc = {{ version = "={MIMALLOC}"', text)
            if k != 1:
                sys.exit(f"{prog}: cannot pin its own mimalloc dependency in {manifest}")
            open(manifest, "w").write(text)
            cmd += ["--features", spec["own"][alloc]]
        elif alloc != "glibc":
            crate, table, path = DEPS[alloc]
            if alloc in spec.get("drop", {}):
                text, k = re.subn(spec["drop"][alloc], "", open(manifest).read())
                if k != 1:
                    sys.exit(f"{prog}: {spec['drop'][alloc]!r} not found in {manifest}")
                open(manifest, "w").write(text)
            with open(manifest, "a") as f:
                f.write(f"\n[dependencies.{crate}]\n{table}")
            with open(main_rs, "a") as f:
                f.write(f"\n#[global_allocator]\nstatic REAL_PROGRAMS_GLOBAL: {path} = {path};\n")
        if alloc == "glibc" and shipped_lock:
            cmd.append("--locked")
        env = dict(os.environ, CARGO_TARGET_DIR=target)
        env.pop("LD_PRELOAD", None)
        run(cmd, cwd=src, env=env)
        if shipped_lock:
            changed = {p for p in lock_pairs(lock + ".pristine") - lock_pairs(lock)
                       if p[0] not in ALLOC_CRATES}
            if changed:
                notes.append(f"{prog}-{alloc}: Cargo.lock entries changed by the allocator "
                             f"dependency: {sorted(changed)}")
        shutil.copy2(os.path.join(target, "release", spec["bin"]),
                     os.path.join(bindir, f"{prog}-{alloc}"))
    for p in (manifest, main_rs, lock):
        if os.path.exists(p + ".pristine"):
            shutil.copy(p + ".pristine", p)
    with open(os.path.join(bindir, f"{prog}.built"), "w") as f:
        f.write(versions()["rustydb-memory"] + "\n")
    return notes


def versions():
    out = {p: s["version"] for p, s in PROGRAMS.items()}
    out.update({"mimalloc (crate)": MIMALLOC, "tikv-jemallocator": JEMALLOC,
                "rustydb-memory": "src/ at " + subprocess.run(
                    ["git", "-C", ROOT, "log", "-1", "--format=%h", "--", "src", "Cargo.toml"],
                    capture_output=True, text=True).stdout.strip() + " (path dependency; "
                    + ("uncommitted changes" if subprocess.run(
                        ["git", "-C", ROOT, "diff", "--quiet", "HEAD", "--", "src"]).returncode
                       else "clean") + ")",
                "rustc": subprocess.run(["rustc", "--version"], capture_output=True,
                                        text=True).stdout.strip()})
    return out
