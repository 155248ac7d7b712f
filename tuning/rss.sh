#!/usr/bin/env bash
# Sets the NIC to N combined queues and spreads RSS evenly over them: one queue per
# shard core. Fixes check net.rss_queues.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--dry-run] IFACE N

  ethtool -L IFACE combined N    # N queue pairs
  ethtool -X IFACE equal N       # RSS indirection table spread evenly over them
Drivers with separate RX/TX channels need 'ethtool -L IFACE rx N tx N' instead.
The queue IRQs change: run tuning/irq-affinity.sh IFACE CORES afterwards.
  --dry-run   print the commands instead of running them
USAGE
}

parse_args "$@"
((${#args[@]} == 2)) || die "need IFACE and N, e.g. $PROG eth0 8 (see --help)"
iface=${args[0]}
n=${args[1]}
[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number of queues, got '$n'"
[[ -d $ROOT/sys/class/net/$iface ]] || die "no interface '$iface' (see: ip link)"
need_root
((DRY_RUN)) || command -v ethtool >/dev/null || die "ethtool not found (apt install ethtool)"

run ethtool -L "$iface" combined "$n"
run ethtool -X "$iface" equal "$n"
note "queue IRQs changed: now run tuning/irq-affinity.sh $iface CORES"
