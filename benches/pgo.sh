#!/usr/bin/env bash
# Makes .cargo/pgo/tern.profdata, the profile that optimised builds of tern
# use (.cargo/rustc-pgo): tern built with -Cprofile-generate serves the load
# bench's fan-in (TCP, TLS, WebSocket), fan-out, churn and idle-connection
# scenarios, quick runs of 3 rounds, and what it counted is merged. The
# latency scenarios are left out of the training on purpose, so that the
# latency rows measure a path the profile was not made from. Needs the
# llvm-profdata of rustc's own LLVM version (Debian: llvm-22 for rustc
# 1.95). Run it again when the hot path changes; functions whose code has
# changed since are built as if there were no profile.
#
#   bash benches/pgo.sh && cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."
major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=$(command -v "llvm-profdata-$major" || true)
if [ -z "$profdata" ]; then
    echo "needs llvm-profdata-$major (rustc's LLVM is $major): apt-get install -y llvm-$major" >&2
    exit 1
fi
build=$PWD/target/pgo-generate
raw=$build/profiles
rm -rf "$raw"
# RUSTFLAGS replaces build.rustflags of .cargo/config.toml: its cfg again.
RUSTFLAGS="--cfg tokio_unstable -Cprofile-generate=$raw" CARGO_TARGET_DIR=$build \
    cargo build --release --bin tern
TERN_BENCH_BINARY=$build/release/tern \
    cargo bench --bench load -- --quick --brokers none fan-in fan-out churn connections-idle
count=$(find "$raw" -name '*.profraw' | wc -l)
if [ "$count" = 0 ]; then
    echo "the instrumented tern wrote no profile to $raw" >&2
    exit 1
fi
# Sparse: a function the training never ran keeps no entry, and is built
# as without a profile, not as cold.
"$profdata" merge --sparse -o .cargo/pgo/tern.profdata "$raw"/*.profraw
# A new profile changes the flags every crate is built with (the cfg
# `tern_profile` in .cargo/config.toml), so that cargo builds them again:
# it does not look into what the wrapper passes.
hash=$(md5sum .cargo/pgo/tern.profdata | cut -c1-12)
sed -i "s/tern_profile=\\\\\"[0-9a-f]*\\\\\"/tern_profile=\\\\\"$hash\\\\\"/" .cargo/config.toml
grep -q "tern_profile=\\\\\"$hash" .cargo/config.toml || {
    echo "could not set tern_profile in .cargo/config.toml" >&2
    exit 1
}
echo ".cargo/pgo/tern.profdata from $count runs of tern: $(du -h .cargo/pgo/tern.profdata | cut -f1)"
