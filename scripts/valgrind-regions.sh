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
  HOARD_STRESS_READS=20000 valgrind --quiet --error-exitcode=99 --leak-check=no \
    "$exe" "${filter[@]}" --test-threads 1
done <<< "$binaries"
log "valgrind memcheck: no errors"
