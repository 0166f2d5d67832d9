#!/usr/bin/env bash
# Set up everything and run all of hoard's tests: format, lints, unit, conformance (local and a
# real Garage S3 server), end-to-end (real worker processes), doc tests and docs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_cargo
apt_install gcc memcached iperf3 fuse3 fio rsync libibverbs-dev librdmacm-dev clang libclang-dev
ensure_garage
build_nodelay_shim
python_env
export CARGO_TERM_COLOR=never
# CI builds once from a clean clone: incremental caches would only cost disk (several GiB).
export CARGO_INCREMENTAL=0
# Everything is built with the RDMA transport (it says at run time when there is no device).
FEATURES=$HOARD_TEST_FEATURES

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked $FEATURES -- -D warnings -D clippy::todo
log "building the binaries the end-to-end tests start, and the tests"
build_for_tests
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile ci $FEATURES
else
  cargo test --workspace --locked $FEATURES
fi
log "the transport's tests without the rdma feature"
cargo test --locked -p hoard-transport --lib
log "the RDMA tests, inside the Soft-RoCE virtual machine"
bash scripts/rdma-tests.sh
log "the region code (the unsafe code) under valgrind memcheck"
bash scripts/valgrind-regions.sh
log "the Python package: the wheel built into a virtual environment, pytest against a real cluster"
(cd python && maturin develop --features rdma --quiet && python -m pytest -q)
log "the S3 gateway: boto3, the AWS CLI and s3torchconnector against a real cluster"
(cd tests/gateway && python -m pytest -q -p no:cacheprovider)
log "doc tests and docs"
cargo test --doc --workspace --locked $FEATURES
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --workspace --locked --quiet $FEATURES
log "all tests passed"
