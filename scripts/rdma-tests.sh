#!/usr/bin/env bash
# The RDMA tests (tests/tests/e2e_rdma.rs), inside a QEMU virtual machine with a real kernel
# verbs stack (Soft-RoCE, rdma_rxe), booted by ../shared/tools/rdma-vm: this host's kernel has no
# RDMA stack. Builds the `hoard` binary and the tests with the `rdma` feature first (the guest
# runs the host's binaries). Where the VM cannot boot, says so and skips (exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_cargo
apt_install libibverbs-dev librdmacm-dev clang libclang-dev
RDMA_VM=${RDMA_VM_TOOL:-../shared/tools/rdma-vm}
if [ ! -x "$RDMA_VM" ]; then
  log "RDMA tests skipped: $RDMA_VM not found (it comes with ../shared)"
  exit 0
fi
log "building hoard and the RDMA tests with the rdma feature"
build_for_tests
bin=$(cargo test --locked --workspace $HOARD_TEST_FEATURES --test e2e_rdma --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*e2e_rdma[^"]*\)".*/\1/p' | tail -1 || true)
[ -n "$bin" ] || { echo "could not find the e2e_rdma test binary" >&2; exit 1; }
log "running the RDMA tests inside the Soft-RoCE VM ($bin)"
set +e
"$RDMA_VM" --cpus 2 --mem 2G --timeout 900 -- "$bin" --test-threads=1 "$@"
rc=$?
set -e
if [ "$rc" -eq 125 ]; then
  log "RDMA tests skipped: the RDMA VM could not boot here (see the console tail above)"
  exit 0
fi
exit "$rc"
