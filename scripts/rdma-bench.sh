#!/usr/bin/env bash
# hoard's one-sided RDMA reads against perftest (ib_read_lat, ib_read_bw) on the same Soft-RoCE
# device, in one boot of the RDMA virtual machine (../shared/tools/rdma-vm). Flags go to
# `hoard-bench rdma` (e.g. --ops 5000 --json target/rdma-bench.json).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_cargo
apt_install libibverbs-dev librdmacm-dev clang libclang-dev
log "building hoard and hoard-bench (release) with the rdma feature"
cargo build --locked --release -p hoard-cli --features rdma
cargo build --locked --release -p hoard-bench --features rdma
exec ../shared/tools/rdma-vm --cpus 2 --mem 2G --timeout 1200 -- ./target/release/hoard-bench rdma "$@"
