#!/usr/bin/env bash
# Sets the cpufreq scaling governor, so that a shard that wakes from idle does not
# first wait for its core to ramp up. Fixes check cpu.governor.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--dry-run] [--cores LIST] [GOVERNOR]

Sets the cpufreq scaling governor (default: performance) on every CPU, or on LIST
(e.g. 2-7). Not persistent: rerun at boot (systemd unit, or cpupower.service).
  --dry-run   print the commands instead of running them
USAGE
}

governor=performance
cores=""
while (($#)); do
    case $1 in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage && exit 0 ;;
    --cores) cores=${2:?--cores needs a CPU list} && shift ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) governor=$1 ;;
    esac
    shift
done
need_root

cpu_dir=$ROOT/sys/devices/system/cpu
if [[ -n $cores ]]; then
    list=$(expand_cpus "$cores")
else
    list=$(for d in "$cpu_dir"/cpu[0-9]*; do [[ -d $d ]] || continue; echo "${d##*/cpu}"; done | sort -n)
fi

set_any=0
for c in $list; do
    file=$cpu_dir/cpu$c/cpufreq/scaling_governor
    [[ -e $file ]] || continue
    avail=$cpu_dir/cpu$c/cpufreq/scaling_available_governors
    if [[ -r $avail ]] && ! grep -qw -- "$governor" "$avail"; then
        die "cpu$c has no governor '$governor' (available: $(cat "$avail"))"
    fi
    write_file "$governor" "$file"
    set_any=1
done
if ((!set_any)); then
    note "no cpufreq on this host (VM, or frequency not OS-controlled): nothing to set"
fi
