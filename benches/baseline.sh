#!/usr/bin/env bash
# Baseline: produce then consume N 100-byte messages through the CLI against a local
# broker on a temporary data directory. Prints messages/s for each phase.
#   benches/baseline.sh [N]     (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
cargo build --release -q
BIN=./target/release/peregrine
DIR=$(mktemp -d)
INPUT="$DIR/input.txt"
# 100-byte values: a 10-digit counter and 90 filler bytes.
awk -v n="$N" 'BEGIN { pad = sprintf("%90s", ""); gsub(/ /, "x", pad); for (i = 0; i < n; i++) printf "%010d%s\n", i, pad }' > "$INPUT"
$BIN serve --data-dir "$DIR/data" --native-addr 127.0.0.1:0 --kafka-addr 127.0.0.1:0 > "$DIR/ready" 2> "$DIR/broker.log" &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do grep -q ready "$DIR/ready" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/.*native=\([^ ]*\).*/\1/p' "$DIR/ready")
$BIN topic create bench --partitions 1 --bootstrap "$ADDR" > /dev/null
t0=$(date +%s.%N)
$BIN produce bench --acks leader --bootstrap "$ADDR" < "$INPUT"
t1=$(date +%s.%N)
got=$($BIN consume bench --format %o --bootstrap "$ADDR" | wc -l)
t2=$(date +%s.%N)
[ "$got" -eq "$N" ] || { echo "consumed $got of $N" >&2; exit 1; }
awk -v n="$N" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
  printf "produce  %d msgs in %.2f s: %.0f msgs/s\n", n, b - a, n / (b - a);
  printf "consume  %d msgs in %.2f s: %.0f msgs/s\n", n, c - b, n / (c - b) }'
