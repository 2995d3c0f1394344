#!/usr/bin/env python3
"""Checks the repository's unsafe-code conventions (run by `.ci/run`):

- every `unsafe fn` declaration (private ones included, in `src/`, `examples/`,
  `tests/`, `benches/`, `fuzz/`) has a `# Safety` section in the doc comment
  above it, except the methods of a trait impl (`impl GlobalAlloc for …`),
  whose contract is the trait's;
- every `unsafe { … }` block and `unsafe impl` has a `SAFETY:` comment above
  it, before the end of the previous statement (the rule clippy's
  `undocumented_unsafe_blocks` applies to the library; this also covers the
  fuzz crate, which CI does not lint);
- no `transmute` changes a lifetime (a lifetime parameter is named in the
  transmute's type arguments) and no `read_volatile` reads buffer-pool page
  bytes (optimistic reads go through atomic words, `buffer_pool/words.rs`).

Prints each finding as `path:line: message` and exits 1 if there is any.
Usage: `python3 scripts/check_unsafe.py [root]`; `--self-test` checks the
checker on known good and bad snippets first.
"""

import os
import re
import sys

DIRS = ("src", "preload", "examples", "tests", "benches", "fuzz")
SKIP = ("target", "corpus", "artifacts")

UNSAFE_FN = re.compile(
    r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?unsafe\s+(extern\s+"[^"]*"\s+)?fn\s+\w+'
)
UNSAFE_BLOCK = re.compile(r"\bunsafe\s*\{")
UNSAFE_IMPL = re.compile(r"^\s*unsafe\s+impl\b")
TRANSMUTE_LIFETIME = re.compile(r"transmute\s*::\s*<[^>]*'[a-z_]\w*")


def code_part(line):
    """The line without a trailing `//` comment and without string literals."""
    out, i, in_str = [], 0, False
    while i < len(line):
        c = line[i]
        if in_str:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
            continue
        if c == '"':
            in_str = True
            out.append('""')
            i += 1
            continue
        if line.startswith("//", i):
            break
        out.append(c)
        i += 1
    return "".join(out)


def is_comment(line):
    s = line.strip()
    return s.startswith("//") or s.startswith("/*") or s.startswith("*")


def has_safety_section(lines, i):
    """Whether the doc comment above the declaration at line `i` has `# Safety`."""
    j = i - 1
    while j >= 0:
        s = lines[j].strip()
        if s.startswith("#[") or s.startswith("#!["):
            j -= 1
            continue
        if s.startswith("///") or s.startswith("//!"):
            if re.match(r"^//[/!]\s*#+\s*Safety\b", s):
                return True
            j -= 1
            continue
        if s.startswith("//"):  # a plain comment between docs and the item
            j -= 1
            continue
        return False
    return False


def has_safety_comment(lines, i):
    """Whether a `SAFETY:` comment is on line `i` or above it, before the end
    of the previous statement or block (at most 20 lines up)."""
    if "SAFETY:" in lines[i]:
        return True
    j = i - 1
    while j >= 0 and i - j <= 20:
        line = lines[j]
        if is_comment(line):
            if "SAFETY:" in line:
                return True
            j -= 1
            continue
        code = code_part(line).rstrip()
        if code == "" or code.endswith((";", "{", "}")):
            return False
        j -= 1
    return False


TRAIT_IMPL = re.compile(r"^(unsafe\s+)?impl\b.*\bfor\b")


def check_file(path, rel, findings):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    in_block_comment = False
    # Headers of the enclosing blocks (the code before each open brace), to
    # tell a trait impl's methods from other functions.
    blocks, pending = [], ""
    for i, line in enumerate(lines):
        s = line.strip()
        if in_block_comment:
            if "*/" in s:
                in_block_comment = False
            continue
        if s.startswith("/*") and "*/" not in s:
            in_block_comment = True
            continue
        if is_comment(line):
            continue
        code = code_part(line)
        in_trait_impl = bool(blocks) and TRAIT_IMPL.match(blocks[-1]) is not None
        for c in code:
            if c == "{":
                blocks.append(pending.strip())
                pending = ""
            elif c == "}":
                if blocks:
                    blocks.pop()
                pending = ""
            elif c == ";":
                pending = ""
            else:
                pending += c
        pending += " "
        if UNSAFE_FN.match(code) and not in_trait_impl and not has_safety_section(lines, i):
            findings.append(f"{rel}:{i + 1}: `unsafe fn` without a `# Safety` section")
        if (UNSAFE_BLOCK.search(code) or UNSAFE_IMPL.match(code)) and not has_safety_comment(
            lines, i
        ):
            findings.append(f"{rel}:{i + 1}: `unsafe` without a `// SAFETY:` comment")
        if TRANSMUTE_LIFETIME.search(code):
            findings.append(f"{rel}:{i + 1}: `transmute` of a lifetime")
        if "read_volatile" in code and rel.startswith(os.path.join("src", "buffer_pool")):
            findings.append(f"{rel}:{i + 1}: `read_volatile` of page bytes (use `words.rs`)")


SELF_TEST = [
    # (snippet, expected number of findings)
    ("fn f() { unsafe { g() } }", 1),
    ("fn f() {\n    // SAFETY: g has no preconditions.\n    unsafe { g() }\n}", 0),
    ("fn f() {\n    // SAFETY: covers only the next statement.\n    a();\n    unsafe { g() }\n}", 1),
    ("fn f() {\n    // SAFETY: p is live.\n    let x = foo(\n        unsafe { *p },\n    );\n}", 0),
    ("fn f() {\n    let s = \"unsafe { not code }\"; // unsafe { nor this }\n}", 0),
    ("/// Does it.\nunsafe fn f() {}", 1),
    ("/// Does it.\n///\n/// # Safety\n///\n/// `p` is live.\n#[inline]\npub(crate) unsafe fn f() {}", 0),
    ('unsafe extern "C" fn f() {}', 1),
    ("unsafe impl Sync for T {}", 1),
    ("// SAFETY: T's state is behind a lock.\nunsafe impl Sync for T {}", 0),
    ("// SAFETY: the trait's contract.\nunsafe impl GlobalAlloc for A {\n    unsafe fn alloc(&self, l: Layout) -> *mut u8 { x() }\n}", 0),
    ("impl A {\n    unsafe fn alloc(&self) {}\n}", 1),
    ("fn f<'a>(c: C<'a>) -> C<'static> { std::mem::transmute::<C<'a>, C<'static>>(c) }", 1),
]


def self_test():
    import tempfile

    failures = 0
    with tempfile.TemporaryDirectory() as d:
        for i, (snippet, want) in enumerate(SELF_TEST):
            path = os.path.join(d, f"case{i}.rs")
            with open(path, "w", encoding="utf-8") as f:
                f.write(snippet + "\n")
            findings = []
            check_file(path, f"case{i}.rs", findings)
            if len(findings) != want:
                failures += 1
                print(f"self-test case {i}: {len(findings)} findings, want {want}: {findings}")
    return failures


def main():
    args = sys.argv[1:]
    if args and args[0] == "--self-test":
        args = args[1:]
        if self_test():
            return 1
    root = args[0] if args else os.path.join(os.path.dirname(__file__), "..")
    root = os.path.abspath(root)
    findings, files = [], 0
    for d in DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
            dirnames[:] = [x for x in dirnames if x not in SKIP]
            for name in sorted(filenames):
                if name.endswith(".rs"):
                    path = os.path.join(dirpath, name)
                    check_file(path, os.path.relpath(path, root), findings)
                    files += 1
    for f in findings:
        print(f)
    print(f"check_unsafe: {files} files, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
