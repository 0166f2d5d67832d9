#!/usr/bin/env bash
# Set up everything and run all of hoard's tests: format, lints, unit, conformance (local and a
# real Garage S3 server), end-to-end (real worker processes), doc tests and docs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_cargo
apt_install gcc memcached iperf3 fuse3 fio rsync
ensure_garage
build_nodelay_shim
export CARGO_TERM_COLOR=never
# CI builds once from a clean clone: incremental caches would only cost disk (several GiB).
export CARGO_INCREMENTAL=0

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings -D clippy::todo
log "building the hoard binary the end-to-end tests run"
cargo build --locked -p hoard-cli
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile ci
else
  cargo test --workspace --locked
fi
log "the region code (the unsafe code) under valgrind memcheck"
bash scripts/valgrind-regions.sh
log "doc tests and docs"
cargo test --doc --workspace --locked
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --workspace --locked --quiet
log "all tests passed"
