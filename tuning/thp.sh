#!/usr/bin/env bash
# Turns transparent hugepages down to madvise (or never), so that khugepaged and
# fault-time compaction do not stall a shard. Fixes mem.thp_enabled, mem.thp_defrag.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--dry-run] [madvise|never]

Sets /sys/kernel/mm/transparent_hugepage/{enabled,defrag} (default: madvise).
Not persistent: also add transparent_hugepage=MODE to the kernel command line.
  --dry-run   print the commands instead of running them
USAGE
}

mode=madvise
while (($#)); do
    case $1 in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage && exit 0 ;;
    madvise | never) mode=$1 ;;
    *) die "unknown argument $1: use madvise or never (see --help)" ;;
    esac
    shift
done
need_root

thp=$ROOT/sys/kernel/mm/transparent_hugepage
if [[ ! -e $thp/enabled ]]; then
    note "no transparent hugepages in this kernel: nothing to set"
    exit 0
fi
write_file "$mode" "$thp/enabled"
write_file "$mode" "$thp/defrag"
note "for the next boot, add transparent_hugepage=$mode to the kernel command line"
