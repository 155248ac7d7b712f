#!/usr/bin/env bash
# Lifts RLIMIT_MEMLOCK for the broker: glommio registers each shard's io_uring
# buffers (about 30 MiB per shard), which the kernel charges against it. Fixes
# check mem.memlock.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--dry-run] [--user NAME] [--unit NAME] [--no-systemd]

Writes /etc/security/limits.d/60-peregrine-memlock.conf (memlock unlimited for USER,
default: every user) for shells and sessions, and a systemd drop-in
/etc/systemd/system/UNIT.service.d/memlock.conf with LimitMEMLOCK=infinity
(default unit: peregrine). Log in again or restart the unit; check with: ulimit -l
  --dry-run   print the commands instead of running them
USAGE
}

user='*'
unit=peregrine
systemd=1
while (($#)); do
    case $1 in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage && exit 0 ;;
    --user) user=${2:?--user needs a name} && shift ;;
    --unit) unit=${2:?--unit needs a name} && shift ;;
    --no-systemd) systemd=0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
[[ $unit =~ ^[A-Za-z0-9@_.:-]+$ ]] || die "bad unit name '$unit'"
need_root

{
    echo "# Written by peregrine tuning/memlock.sh: io_uring registered buffers"
    echo "$user soft memlock unlimited"
    echo "$user hard memlock unlimited"
    # '*' does not match root in limits.conf.
    if [[ $user == '*' ]]; then
        echo "root soft memlock unlimited"
        echo "root hard memlock unlimited"
    fi
} | write_text "$ROOT/etc/security/limits.d/60-peregrine-memlock.conf"

if ((systemd)); then
    printf '[Service]\nLimitMEMLOCK=infinity\n' |
        write_text "$ROOT/etc/systemd/system/$unit.service.d/memlock.conf"
    if ((DRY_RUN)) || [[ -d /run/systemd/system ]]; then
        run systemctl daemon-reload
    fi
fi
