#!/usr/bin/env bash
# Reserve 2 MiB huge pages for hoard workers' memory tiers (needs root).
#
#   scripts/hugepages.sh 1GiB      # reserve enough for 1 GiB of memory tier (512 pages)
#   scripts/hugepages.sh 0         # give them back
#   scripts/hugepages.sh           # show what is reserved and free
#
# A worker maps its memory tier from these pages (memfd, MFD_HUGETLB) and locks it; when too few
# are free it falls back to normal pages and logs one warning. Reserve the sum of the
# `memory_capacity` of every worker on the host, rounded up to 2 MiB each. The kernel may reserve
# fewer than asked when memory is fragmented: the script says how many it got. To keep the
# reservation across reboots, put `vm.nr_hugepages = N` in /etc/sysctl.d/.
set -euo pipefail

knob=/proc/sys/vm/nr_hugepages
show() {
  grep -E '^(HugePages_(Total|Free|Rsvd)|Hugepagesize)' /proc/meminfo
}

if [[ $# -eq 0 ]]; then
  show
  exit 0
fi

to_bytes() {
  local v=$1
  case "$v" in
    *GiB) echo $(( ${v%GiB} * 1024 * 1024 * 1024 )) ;;
    *MiB) echo $(( ${v%MiB} * 1024 * 1024 )) ;;
    *[0-9]) echo "$v" ;;
    *) echo "unknown size '$v' (use bytes, NMiB or NGiB)" >&2; exit 2 ;;
  esac
}

bytes=$(to_bytes "$1")
page=$((2 * 1024 * 1024))
want=$(( (bytes + page - 1) / page ))
echo "$want" > "$knob"
got=$(cat "$knob")
echo "asked for $want huge pages of 2 MiB, the kernel reserved $got"
show
if (( got < want )); then
  echo "fewer than asked: memory is fragmented; try again early after boot, or drop caches first (echo 3 > /proc/sys/vm/drop_caches)" >&2
  exit 1
fi
