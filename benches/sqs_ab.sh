#!/bin/bash
# A/B of two broker builds under `peregrine bench sqs` (benches/RESULTS.md, "Broker CPU
# per message on dev-2c"): rounds alternate A B / B A; each run reads the broker's CPU
# (utime + stime from /proc/PID/stat) before and after the bench and divides by the
# messages received and deleted. Prints the per-round B/A ratios and their medians.
#
#   benches/sqs_ab.sh BIN_A BIN_B ROUNDS MESSAGES [CLIENT]
#
# CLIENT (the bench client binary) defaults to BIN_A. Both brokers stay up for the whole
# run (ports 18391 and 18392); FRESH=1 starts each run's broker on a fresh data dir
# instead.
set -u
A=$1; B=$2; ROUNDS=$3; N=$4; CLIENT=${5:-$1}
FRESH=${FRESH:-0}
TCK=$(getconf CLK_TCK)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/sqs_ab.XXXX")
OUT=$DIR/results.tsv
echo -e "round\tbin\tmsgs_s\tsent_s\tcpu_us_msg\tuser_us_msg\tlost\tdup" > "$OUT"
cpu() { awk -v t="$TCK" '{print ($14+$15)/t, $14/t}' "/proc/$1/stat"; }
start() { # bin port -> pid, once /healthz answers
  local d; d=$(mktemp -d "$DIR/data.XXXX")
  "$1" serve --data-dir "$d" --shards 2 --native-addr 127.0.0.1:0 --kafka-addr 127.0.0.1:0 \
    --amqp-addr 127.0.0.1:0 --http-addr "127.0.0.1:$2" > "$d.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/healthz" > /dev/null && break; sleep 0.1; done
  echo $pid
}
declare -A BIN=([A]=$A [B]=$B) PORT=([A]=18391 [B]=18392) PID=()
if [ "$FRESH" != 1 ]; then PID[A]=$(start "$A" 18391); PID[B]=$(start "$B" 18392); fi
one() { # label round
  local label=$1 pid
  if [ "$FRESH" = 1 ]; then pid=$(start "${BIN[$label]}" "${PORT[$label]}"); else pid=${PID[$label]}; fi
  local before after js sent
  before=$(cpu "$pid")
  js=$("$CLIENT" bench sqs --sqs-endpoint "http://127.0.0.1:${PORT[$label]}" --messages "$N" --json 2> "$DIR/err")
  after=$(cpu "$pid")
  sent=$(grep -o 'sent in [0-9.]* s ([0-9]* msgs/s' "$DIR/err" | grep -o '([0-9]*' | tr -d '(')
  if [ "$FRESH" = 1 ]; then kill "$pid"; wait "$pid" 2> /dev/null; fi
  echo "$js" | python3 -c "
import json, sys
j = json.load(sys.stdin)
b, a = '$before'.split(), '$after'.split()
m = max(j['messages_received'], j['messages_acked'], 1)
cpu, user = (float(a[0]) - float(b[0])) * 1e6 / m, (float(a[1]) - float(b[1])) * 1e6 / m
print('$2\t$label\t%.0f\t${sent:-0}\t%.2f\t%.2f\t%d\t%d' % (j['msgs_per_s'], cpu, user, j['lost'], j['duplicated']))" >> "$OUT"
}
for r in $(seq "$ROUNDS"); do
  if (( r % 2 )); then one A "$r"; one B "$r"; else one B "$r"; one A "$r"; fi
done
if [ "$FRESH" != 1 ]; then kill "${PID[A]}" "${PID[B]}"; wait; fi
python3 - "$OUT" <<'PY'
import statistics as st, sys
by = {}
for line in list(open(sys.argv[1]))[1:]:
    r, b, *v = line.rstrip('\n').split('\t')
    by.setdefault(r, {})[b] = [float(x) for x in v]
pairs = [p for p in by.values() if 'A' in p and 'B' in p]
for i, name in [(0, 'msgs/s'), (1, 'sent/s'), (2, 'cpu/msg'), (3, 'user/msg')]:
    ratios = [p['B'][i] / p['A'][i] for p in pairs if p['A'][i]]
    if ratios:
        print(name, 'B/A', ' '.join('%.2f' % x for x in ratios), 'median %.3f' % st.median(ratios))
for b in 'AB':
    runs = [p[b] for p in by.values() if b in p]
    print(b, 'median msgs/s %.0f, cpu/msg %.2f us, lost %d, duplicated %d' % (
        st.median(r[0] for r in runs), st.median(r[2] for r in runs),
        sum(r[4] for r in runs), sum(r[5] for r in runs)))
PY
echo "$OUT"
