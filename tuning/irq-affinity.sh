#!/usr/bin/env bash
# Pins each NIC queue's IRQ to one shard core (queue i to core i mod the number of
# cores), so that a connection's packets are handled on the core that serves it, and
# stops irqbalance, which would undo it. Fixes checks irq.affinity and irq.irqbalance.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--dry-run] IFACE CORES

Writes /proc/irq/N/smp_affinity_list for each queue IRQ of IFACE, queue i onto the
i-th of CORES (round robin), and stops irqbalance. Run it again after changing the
queue count (tuning/rss.sh), since the IRQs change. Not persistent across reboots.
  --dry-run   print the commands instead of running them
USAGE
}

parse_args "$@"
((${#args[@]} == 2)) || die "need IFACE and CORES, e.g. $PROG eth0 2-7 (see --help)"
iface=${args[0]}
mapfile -t cores < <(expand_cpus "${args[1]}")
((${#cores[@]})) || die "bad CPU list '${args[1]}'"
[[ -d $ROOT/sys/class/net/$iface ]] || die "no interface '$iface' (see: ip link)"
need_root

# The NIC's vectors: those of its PCI function (virtio-net sits one level below it).
msi=" "
for d in "$ROOT/sys/class/net/$iface/device/msi_irqs" "$ROOT/sys/class/net/$iface/device/../msi_irqs"; do
    [[ -d $d ]] || continue
    for f in "$d"/*; do msi+="${f##*/} "; done
    break
done

pinned=0
while read -r first rest; do
    irq=${first%:}
    [[ $irq =~ ^[0-9]+$ ]] || continue
    name=${rest##* }
    if [[ $msi != *" $irq "* ]] && ! [[ $name =~ (^|[^[:alnum:]])"$iface"([^[:alnum:]]|$) ]]; then
        continue
    fi
    # Control vectors carry no traffic: virtio config, mlx5 async, Intel misc.
    [[ ${name,,} =~ config|async|misc|ctrl|control ]] && continue
    base=${name%%@*}
    queue=$pinned
    [[ $base =~ ([0-9]+)$ ]] && queue=$((10#${BASH_REMATCH[1]}))
    core=${cores[queue % ${#cores[@]}]}
    echo "# $name (IRQ $irq, queue $queue) -> core $core"
    write_file "$core" "$ROOT/proc/irq/$irq/smp_affinity_list" ||
        note "IRQ $irq refused an affinity (kernel-managed vector); left as is"
    pinned=$((pinned + 1))
done <"$ROOT/proc/interrupts"
((pinned)) || die "no queue IRQs for $iface in /proc/interrupts (virtual interface, or a driver naming them differently)"

if pids=$(pgrep -x irqbalance); then
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        run systemctl disable --now irqbalance
    else
        for pid in $pids; do run kill "$pid"; done
    fi
fi
