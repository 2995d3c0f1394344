#!/usr/bin/env bash
# Instructions per operation (callgrind) of the library's hot paths, for one or
# more checkouts of the library, printed as a table path × checkout.
#
#   benches/ir/run.sh <checkout>...          e.g. benches/ir/run.sh /work/wt/before .
#
# For each checkout the package benches/ir is copied to a scratch directory with
# its path dependency pointed at that checkout, built there (release, debug=1,
# `nice -n 10`, its own target directory), and every path is run once under
#   valgrind --tool=callgrind --toggle-collect='ir_paths::ir_count_*'
# so only the counted function (and what it calls) is counted; Ir/op = Ir / N.
#
# Environment:
#   IR_PATHS   paths to run (default: all six)
#   IR_N       operations per path (default 200000)
#   IR_WORK    scratch directory (default ${TMPDIR:-/tmp}/ir_paths); builds are
#              kept there between runs
#   IR_KEEP=1  keep the callgrind output files (IR_WORK/<checkout>/callgrind.<path>)
#   CARGO_OFFLINE=1  pass --offline to cargo
# The last column is the ratio of the last checkout to the first.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
paths=${IR_PATHS:-optimistic_u64 optimistic_128 write_128 pin_unpin alloc_pair arena_u64}
n=${IR_N:-200000}
work=${IR_WORK:-${TMPDIR:-/tmp}/ir_paths}
offline=()
[[ "${CARGO_OFFLINE:-0}" == 1 ]] && offline=(--offline)

if [[ $# -eq 0 ]]; then
    echo "usage: $0 <checkout>..." >&2
    exit 2
fi
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 2; }

labels=()
declare -A ir
for co in "$@"; do
    co=$(cd "$co" && pwd)
    [[ -f "$co/Cargo.toml" && -f "$co/src/lib.rs" ]] || { echo "$co: not a checkout of the library" >&2; exit 2; }
    rev=$(git -C "$co" rev-parse --short HEAD 2>/dev/null || echo "?")
    if [[ -n "$(git -C "$co" status --porcelain --untracked-files=no -- src Cargo.toml 2>/dev/null)" ]]; then
        rev="$rev+dirty"
    fi
    label="$(basename "$co")@$rev"
    labels+=("$label")
    scratch="$work/$(printf '%s' "$co" | tr -c 'A-Za-z0-9._-' '_')"
    mkdir -p "$scratch"
    rm -rf "$scratch/src"
    cp -r "$here/src" "$scratch/src"
    [[ -f "$here/Cargo.lock" ]] && cp "$here/Cargo.lock" "$scratch/Cargo.lock"
    # The same manifest, with the library's path dependency pointed at this checkout.
    sed "s|^rustydb-memory = { path = \"../..\"|rustydb-memory = { path = \"$co\"|" \
        "$here/Cargo.toml" >"$scratch/Cargo.toml"
    grep -q "path = \"$co\"" "$scratch/Cargo.toml" || { echo "could not rewrite the dependency" >&2; exit 1; }
    echo "== building against $co ($label)" >&2
    CARGO_TARGET_DIR="$scratch/target" nice -n 10 cargo build --release "${offline[@]}" \
        --manifest-path "$scratch/Cargo.toml" >&2
    bin="$scratch/target/release/ir_paths"
    for p in $paths; do
        out="$scratch/callgrind.$p"
        valgrind --tool=callgrind --callgrind-out-file="$out" \
            --toggle-collect='ir_paths::ir_count_*' "$bin" "$p" "$n" \
            >"$scratch/valgrind.$p.log" 2>&1 || { cat "$scratch/valgrind.$p.log" >&2; exit 1; }
        total=$(awk '/^summary:/ { print $2 }' "$out")
        ir["$label/$p"]=$(awk -v t="$total" -v n="$n" 'BEGIN { printf "%.1f", t / n }')
        echo "   $p: $total Ir / $n = ${ir["$label/$p"]} Ir/op" >&2
        [[ "${IR_KEEP:-0}" == 1 ]] || rm -f "$out"
    done
done

# The table (markdown).
first=${labels[0]}
last=${labels[${#labels[@]}-1]}
head="| path (Ir/op) |"
rule="|---|"
for l in "${labels[@]}"; do
    head+=" \`$l\` |"
    rule+="---:|"
done
if [[ ${#labels[@]} -gt 1 ]]; then
    head+=" last ÷ first |"
    rule+="---:|"
fi
echo "$head"
echo "$rule"
for p in $paths; do
    row="| \`$p\` |"
    for l in "${labels[@]}"; do
        row+=" ${ir["$l/$p"]} |"
    done
    if [[ ${#labels[@]} -gt 1 ]]; then
        row+=" $(awk -v a="${ir["$last/$p"]}" -v b="${ir["$first/$p"]}" 'BEGIN { printf "%.3f", a / b }') |"
    fi
    echo "$row"
done
