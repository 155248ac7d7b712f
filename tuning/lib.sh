# shellcheck shell=bash
# Sourced by the tuning scripts: messages, a dry-run aware runner, CPU lists.
# TUNE_ROOT (tests only) prefixes every /sys, /proc and /etc path, like the hidden
# `peregrine tune --root`.

# shellcheck disable=SC2034 # read by the scripts that source this file
ROOT=${TUNE_ROOT:-}
DRY_RUN=0
PROG=$(basename "$0")

die() {
    printf '%s: %s\n' "$PROG" "$*" >&2
    exit 1
}

note() {
    printf '%s: %s\n' "$PROG" "$*" >&2
}

# run CMD...: runs it, or prints it shell-quoted under --dry-run.
run() {
    if ((DRY_RUN)); then
        local line
        printf -v line '%q ' "$@"
        printf '%s\n' "${line% }"
    else
        "$@"
    fi
}

# quote WORD: WORD as a shell word, single-quoted only when it needs to be.
quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./:@+=,-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# write_file VALUE PATH: `echo VALUE > PATH`, or prints that under --dry-run.
write_file() {
    if ((DRY_RUN)); then
        printf 'echo %s > %s\n' "$(quote "$1")" "$(quote "$2")"
    else
        printf '%s\n' "$1" >"$2"
    fi
}

# write_text PATH < TEXT: writes a config file, or prints the heredoc under --dry-run.
write_text() {
    local path=$1 text
    text=$(cat)
    if ((DRY_RUN)); then
        printf 'mkdir -p %q\n' "$(dirname "$path")"
        printf "cat > %q <<'EOF'\n%s\nEOF\n" "$path" "$text"
    else
        mkdir -p "$(dirname "$path")"
        printf '%s\n' "$text" >"$path"
    fi
}

need_root() {
    ((DRY_RUN)) || [[ $EUID -eq 0 ]] || die "must run as root (see the commands with --dry-run)"
}

# expand_cpus LIST: the CPUs of a list such as 0-3,8, one per line.
expand_cpus() {
    local part list=$1
    local -a parts
    IFS=, read -ra parts <<<"$list"
    ((${#parts[@]})) || die "empty CPU list"
    for part in "${parts[@]}"; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]] && ((BASH_REMATCH[1] <= BASH_REMATCH[2])); then
            seq "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
        elif [[ $part =~ ^[0-9]+$ ]]; then
            echo "$part"
        else
            die "bad CPU list '$list': use e.g. 0-3 or 0,2,4"
        fi
    done
}

# Parses the options every script takes (--dry-run, -h/--help; `usage` is the calling
# script's) and leaves the positional arguments in the global array `args`.
parse_args() {
    args=()
    while (($#)); do
        case $1 in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage && exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) args+=("$1") ;;
        esac
        shift
    done
}
