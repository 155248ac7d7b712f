#!/usr/bin/env bash
# Sets an NVMe namespace's I/O scheduler to none (the broker batches and orders its
# own O_DIRECT writes) and its request queue depth. Fixes checks disk.scheduler and
# disk.nr_requests.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--dry-run] [--nr-requests N] DEVICE

DEVICE is a whole disk such as nvme0n1 (a partition or /dev/ path is accepted).
Sets queue/scheduler to none and queue/nr_requests to N (default 1023; the kernel
caps it at the device's queue depth). Not persistent: see the udev rule it prints.
  --dry-run   print the commands instead of running them
USAGE
}

nr=1023
dev=""
while (($#)); do
    case $1 in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage && exit 0 ;;
    --nr-requests) nr=${2:?--nr-requests needs a number} && shift ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) dev=${1#/dev/} ;;
    esac
    shift
done
[[ -n $dev ]] || die "which device? e.g. $PROG nvme0n1 (see --help)"
[[ $nr =~ ^[1-9][0-9]*$ ]] || die "--nr-requests must be a positive number, got '$nr'"
# A partition's queue settings belong to its disk.
if [[ -e $ROOT/sys/class/block/$dev/partition ]]; then
    dev=$(basename "$(dirname "$(readlink -f "$ROOT/sys/class/block/$dev")")")
fi
queue=$ROOT/sys/block/$dev/queue
[[ -d $queue ]] || die "no block device '$dev' under /sys/block (see: lsblk -d)"
need_root
grep -qw none "$queue/scheduler" || die "$dev offers no 'none' scheduler: $(cat "$queue/scheduler")"
if [[ $(cat "$queue/rotational" 2>/dev/null || echo 0) == 1 ]]; then
    note "$dev reports itself rotational: an elevator usually helps spinning disks"
fi

write_file none "$queue/scheduler"
write_file "$nr" "$queue/nr_requests" ||
    note "kernel refused nr_requests=$nr (deeper than the device's queue); kept $(cat "$queue/nr_requests")"
note "to keep it across reboots, add a udev rule such as /etc/udev/rules.d/60-peregrine-nvme.rules:"
note "  ACTION==\"add|change\", KERNEL==\"nvme[0-9]*n[0-9]*\", ATTR{queue/scheduler}=\"none\""
