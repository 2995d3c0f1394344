#!/usr/bin/env bash
# Builds librustydb_malloc.so and installs it with its header and pkg-config
# file under PREFIX (default /usr/local):
#   PREFIX/lib/librustydb_malloc.so
#   PREFIX/include/rustydb_memory.h
#   PREFIX/lib/pkgconfig/rustydb-malloc.pc
# Then: cc app.c $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs rustydb-malloc)
# or:   LD_PRELOAD=PREFIX/lib/librustydb_malloc.so program
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${1:-/usr/local}"
(cd "$here" && cargo build --release --quiet)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -n 1)
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
prefix="$(cd "$prefix" && pwd)"
install -m 0755 "$here/target/release/librustydb_malloc.so" "$prefix/lib/"
install -m 0644 "$here/include/rustydb_memory.h" "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/rustydb-malloc.pc.in" \
    > "$prefix/lib/pkgconfig/rustydb-malloc.pc"
echo "installed librustydb_malloc $version under $prefix"
