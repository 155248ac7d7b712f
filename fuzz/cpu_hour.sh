#!/bin/bash
# Fuzzes each TARGET until it has used CPU_S seconds of CPU (default 3600: the issue's
# hour of a core, counted from the fuzzer's own utime + stime in /proc, not wall time),
# SLOTS targets at a time (default 2), at nice 19, from a copy of its committed corpus;
# then merges the inputs with new coverage into fuzz/corpus/TARGET (inputs over 64 KiB
# dropped) and prints one line of figures per target. Build first:
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
run() { # target: fuzz until CPU_S of CPU
  local t=$1 pid
  mkdir -p "$WORK/$t" && cp "$ROOT/corpus/$t/"* "$WORK/$t/"
  ( cd "$WORK" && exec nice -n 19 /usr/bin/time -v "$BIN/$t" "$t" -rss_limit_mb=2048 \
      -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/$t-" \
      > "$WORK/$t.log" 2>&1 ) &
  pid=$!
  local f=""
  while kill -0 "$pid" 2> /dev/null; do
    [ -z "$f" ] && f=$(pgrep -f "^$BIN/$t $t " | head -1)
    if [ -n "$f" ] && [ "$(cpu_of "$f")" -ge "$CPU_S" ]; then kill -INT "$f"; fi
    sleep 5
  done
}
figures() { # target: one line of figures, then the merge
  local t=$1 L=$WORK/$1.log before after
  before=$(ls "$ROOT/corpus/$t" | wc -l)
  touch "$WORK/merge-marker"
  "$BIN/$t" -merge=1 "$ROOT/corpus/$t" "$WORK/$t" > "$WORK/$t.merge.log" 2>&1
  find "$ROOT/corpus/$t" -type f -newer "$WORK/merge-marker" -size +64k -delete
  after=$(ls "$ROOT/corpus/$t" | wc -l)
  echo "$t wall=$(grep 'Elapsed (wall clock)' "$L" | awk '{print $NF}')" \
    "user_s=$(grep 'User time' "$L" | awk '{print $NF}') sys_s=$(grep 'System time' "$L" | awk '{print $NF}')" \
    "execs=$(grep stat::number_of_executed_units "$L" | awk '{print $2}')" \
    "$(grep -E '^#[0-9]+' "$L" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')" \
    "peak_rss_mb=$(grep stat::peak_rss_mb "$L" | awk '{print $2}')" \
    "artifacts=$(ls "$WORK/artifacts" | grep -c "^$t-") new_inputs=$((after - before))"
}
targets=("$@")
for ((i = 0; i < ${#targets[@]}; i += SLOTS)); do
  for t in "${targets[@]:i:SLOTS}"; do run "$t" & done
  wait
done
for t in "${targets[@]}"; do figures "$t"; done
echo "logs and working corpora: $WORK"
