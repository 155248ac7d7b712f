#!/usr/bin/env bash
# Sets the network and VM sysctls `peregrine tune --check` recommends, live and in
# /etc/sysctl.d/60-peregrine.conf. Ceilings (buffer maxima, somaxconn) are only
# raised, never lowered. Fixes the sysctl.* checks and mem.swappiness.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--dry-run] [--no-persist]

  net.core.busy_poll=50  net.core.busy_read=50      busy-poll the NIC for 50 µs
  net.core.rmem_max, wmem_max >= 16 MiB             socket buffer ceilings
  net.ipv4.tcp_rmem, tcp_wmem max >= 16 MiB         autotuning ceilings
  net.core.somaxconn >= 4096                        accept backlog
  kernel.numa_balancing=0  vm.swappiness=1          no page migration or swap stalls
  --no-persist  set them live only, do not write /etc/sysctl.d/60-peregrine.conf
  --dry-run     print the commands instead of running them
USAGE
}

persist=1
while (($#)); do
    case $1 in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage && exit 0 ;;
    --no-persist) persist=0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
need_root

MIB16=$((16 << 20))
conf=""

path_of() { echo "$ROOT/proc/sys/${1//.//}"; }

# set_to KEY VALUE: sets it outright.
set_to() {
    local path
    path=$(path_of "$1")
    if [[ ! -e $path ]]; then
        note "$1 does not exist on this kernel: skipped"
        return
    fi
    write_file "$2" "$path"
    conf+="$1 = $2"$'\n'
}

# at_least KEY VALUE: raises it to VALUE, keeps a higher value.
at_least() {
    local cur
    cur=$(cat "$(path_of "$1")" 2>/dev/null || echo 0)
    if ((cur > $2)); then set_to "$1" "$cur"; else set_to "$1" "$2"; fi
}

# max_at_least KEY VALUE: for `min default max` triples, raises only max.
max_at_least() {
    local min def max
    read -r min def max <"$(path_of "$1")" || true
    [[ -n ${max:-} ]] || {
        note "$1 does not exist on this kernel: skipped"
        return
    }
    ((max > $2)) || max=$2
    set_to "$1" "$min $def $max"
}

set_to net.core.busy_poll 50
set_to net.core.busy_read 50
at_least net.core.rmem_max "$MIB16"
at_least net.core.wmem_max "$MIB16"
max_at_least net.ipv4.tcp_rmem "$MIB16"
max_at_least net.ipv4.tcp_wmem "$MIB16"
at_least net.core.somaxconn 4096
set_to kernel.numa_balancing 0
set_to vm.swappiness 1

if ((persist)); then
    printf '# Written by peregrine tuning/sysctl.sh\n%s' "$conf" |
        write_text "$ROOT/etc/sysctl.d/60-peregrine.conf"
fi
