#!/usr/bin/env bash
# Set up and run hoard's quickstart: one worker caching a local directory (no S3 account needed).
# Usage: scripts/up.sh [--dir DIR] [other `hoard up` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_cargo
log "building hoard (release)"
cargo build --release --locked -p hoard-cli
log "starting: target/release/hoard up $*"
exec target/release/hoard up "$@"
