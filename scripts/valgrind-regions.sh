#!/usr/bin/env bash
# The region code (the only unsafe code: mappings, copies out of shared memory, file regions)
# under valgrind's memcheck: its unit tests, the shared-memory transport's tests, and the
# slot-reuse stress test with fewer copies. Miri and the sanitizers need a nightly toolchain,
# which these machines do not have; memcheck runs on the stable build. Exits non-zero on any
# memcheck error.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
apt_install valgrind
binaries=$(cargo test --locked -p hoard-transport --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])')
while read -r name exe; do
  case "$name" in
    hoard_transport) filter=(region shm) ;;
    region_stress) filter=() ;;
    *) continue ;;
  esac
  log "valgrind memcheck: $name ${filter[*]:-}"
  # --fair-sched: valgrind runs one thread at a time, and without it the stress test's slot
  # owner, which never blocks, takes nearly every turn (an hour for 20,000 copies on CI).
  HOARD_STRESS_READS=200000 valgrind --fair-sched=yes --quiet --error-exitcode=99 --leak-check=no \
    "$exe" "${filter[@]}" --test-threads 1
done <<< "$binaries"
log "valgrind memcheck: no errors"
