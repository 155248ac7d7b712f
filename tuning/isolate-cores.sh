#!/usr/bin/env bash
# Prints the kernel command line that keeps the scheduler, timer ticks, RCU callbacks
# and default IRQ affinity off the shard cores. Fixes checks cpu.isolation,
# cpu.nohz_full and cpu.rcu_nocbs. Boot parameters cannot be applied live, so this
# script changes nothing; --dry-run is accepted and prints the same.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--dry-run] CORES

Prints the kernel parameters that isolate CORES (the broker's --cores, e.g. 2-7)
and how to add them to the bootloader. They take effect after a reboot.
  --dry-run   accepted for symmetry; nothing is changed either way
USAGE
}

parse_args "$@"
cores=${args[-1]:-}
[[ -n $cores ]] || die "which cores? e.g. $PROG 2-7 (see --help)"
shard=$(expand_cpus "$cores")

online=$ROOT/sys/devices/system/cpu/online
housekeeping=""
if [[ -r $online ]]; then
    for c in $(expand_cpus "$(cat "$online")"); do
        grep -qx "$c" <<<"$shard" || housekeeping+="${housekeeping:+,}$c"
    done
    [[ -n $housekeeping ]] || die "CORES $cores is every online CPU: leave at least one for the kernel"
fi

params="isolcpus=$cores nohz_full=$cores rcu_nocbs=$cores"
[[ -z $housekeeping ]] || params+=" irqaffinity=$housekeeping"
((!DRY_RUN)) || echo "# dry run: this script only prints; nothing is changed"
cat <<OUT
# Kernel parameters for shard cores $cores (housekeeping CPUs: ${housekeeping:-unknown}):
$params
#
# GRUB (Debian/Ubuntu): append them to GRUB_CMDLINE_LINUX in /etc/default/grub, then
#   update-grub && reboot
# GRUB (RHEL/Fedora):
#   grubby --update-kernel=ALL --args="$params" && reboot
# systemd-boot: append them to /etc/kernel/cmdline, then reinstall the kernel entry.
#
# After the reboot:
#   cat /sys/devices/system/cpu/isolated      # should print $cores
#   tuning/irq-affinity.sh IFACE $cores       # NIC queue IRQs onto the shard cores
#   peregrine serve --cores $cores
OUT
