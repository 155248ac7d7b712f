#!/bin/bash
# Fuzzes each TARGET until it has used CPU_S seconds of CPU (default 3600: the issue's
# hour of a core, counted from the fuzzer's own utime + stime in /proc, not wall time),
# SLOTS targets at a time (default 2), at nice 19, from a copy of its committed corpus;
# then merges the inputs with new coverage into fuzz/corpus/TARGET (inputs over 64 KiB
# dropped) and prints one line of figures per target. A run ended only by a pause
# (SIGSTOP: libFuzzer then reports a timeout) is resumed; see run(). Build first:
#   cd fuzz && cargo +nightly fuzz build -O
#   fuzz/cpu_hour.sh kafka_request native_frame           # WORK=dir CPU_S=3600 SLOTS=2
set -u
CPU_S=${CPU_S:-3600}; SLOTS=${SLOTS:-2}
ROOT=$(cd "$(dirname "$0")" && pwd)
BIN=$ROOT/target/x86_64-unknown-linux-gnu/release
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/cpu_hour.XXXX")}
TCK=$(getconf CLK_TCK)
mkdir -p "$WORK/artifacts"
cpu_of() { awk -v t="$TCK" '{print int(($14+$15)/t)}' "/proc/$1/stat" 2> /dev/null || echo 0; }
run() { # target: fuzz until CPU_S of CPU, over as many runs as pauses make
  local t=$1 used=0 n=0 pid f last c a real
  mkdir -p "$WORK/$t" && cp "$ROOT/corpus/$t/"* "$WORK/$t/"
  while [ "$used" -lt "$CPU_S" ]; do
    n=$((n + 1))
    ( cd "$WORK" && exec nice -n 19 /usr/bin/time -v "$BIN/$t" "$t" -rss_limit_mb=2048 \
        -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/$t-$n-" \
        > "$WORK/$t.run$n.log" 2>&1 ) &
    pid=$!
    f="" last=0
    while kill -0 "$pid" 2> /dev/null; do
      [ -z "$f" ] && f=$(pgrep -f "^$BIN/$t $t " | head -1)
      if [ -n "$f" ]; then
        c=$(cpu_of "$f")
        [ "$c" -gt "$last" ] && last=$c
        [ $((used + last)) -ge "$CPU_S" ] && kill -INT "$f"
      fi
      sleep 5
    done
    used=$((used + last))
    [ "$used" -ge "$CPU_S" ] && break
    # Ended early. libFuzzer's -timeout is wall time, so a fuzzer paused (SIGSTOP, e.g.
    # for a benchmark) reports its input as a timeout: if every artifact of this run is
    # a timeout or slow unit that replays within the limit, resume on the working corpus.
    # A run that ended without a timeout artifact (a crash, or killed) is not a pause.
    real=1
    for a in "$WORK/artifacts/$t-$n-"*; do
      case $a in *-timeout-*) real=0 ;; esac
    done
    for a in "$WORK/artifacts/$t-$n-"*; do
      [ -e "$a" ] || continue
      case $a in
        *-timeout-* | *-slow-unit-*)
          "$BIN/$t" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 "$a" > /dev/null 2>&1 || real=1 ;;
        *) real=1 ;;
      esac
    done
    [ "$real" = 1 ] && break
    echo "$t: run $n ended by a pause at ${used} s of CPU (its timeout replays in time); resumed" \
      >> "$WORK/resumes"
    rm -f "$WORK/artifacts/$t-$n-"*
  done
}
sum() { # target, pattern: the last field of its lines summed over the target's run logs
  cat "$WORK/$1".run*.log | grep "$2" | awk '{s += $NF} END {print s + 0}'
}
figures() { # target: one line of figures, then the merge
  local t=$1 before after
  before=$(ls "$ROOT/corpus/$t" | wc -l)
  touch "$WORK/merge-marker"
  "$BIN/$t" -merge=1 "$ROOT/corpus/$t" "$WORK/$t" > "$WORK/$t.merge.log" 2>&1
  find "$ROOT/corpus/$t" -type f -newer "$WORK/merge-marker" -size +64k -delete
  after=$(ls "$ROOT/corpus/$t" | wc -l)
  echo "$t runs=$(ls "$WORK/$t".run*.log | wc -l)" \
    "user_s=$(sum "$t" 'User time') sys_s=$(sum "$t" 'System time')" \
    "execs=$(sum "$t" stat::number_of_executed_units)" \
    "$(cat "$WORK/$t".run*.log | grep -E '^#[0-9]+' | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')" \
    "peak_rss_mb=$(cat "$WORK/$t".run*.log | grep stat::peak_rss_mb | awk '{print $2}' | sort -n | tail -1)" \
    "artifacts=$(ls "$WORK/artifacts" | grep -c "^$t-") new_inputs=$((after - before))"
}
# One block, read whole before it runs, ending in exit: bash reads a script as it goes,
# so an edit to this file during an hour-long run would otherwise change what it does next.
{
  targets=("$@")
  for ((i = 0; i < ${#targets[@]}; i += SLOTS)); do
    for t in "${targets[@]:i:SLOTS}"; do run "$t" & done
    wait
  done
  for t in "${targets[@]}"; do figures "$t"; done
  echo "logs and working corpora: $WORK"
  exit
}
