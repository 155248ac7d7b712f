#!/bin/bash
# A/B of two broker builds under `peregrine bench throughput --embedded --broker-shards 2`
# (benches/RESULTS.md, "The yields measured again on a quiet dev-2c"), with A' (a copy
# of A) as the control for what this machine's noise alone gives. Each round runs A, B
# and A' back to back in rotating order; prints the per-round B/A and A'/A ratios of
# msgs/s and broker CPU per message, their medians and the medians of each build.
#
#   benches/native_ab.sh BIN_A BIN_B ROUNDS MESSAGES
set -u
A=$1; B=$2; ROUNDS=$3; N=$4
DIR=$(mktemp -d "${TMPDIR:-/tmp}/native_ab.XXXX")
A2=$DIR/peregrine-a2
cp "$A" "$A2"
OUT=$DIR/results.tsv
echo -e "round\tbin\tmsgs_s\tcpu_ns_msg\tlost\tdup" > "$OUT"
one() { # label binary round
  "$2" bench throughput --embedded --broker-shards 2 --messages "$N" --json 2> /dev/null |
    python3 -c "
import json, sys
j = json.load(sys.stdin)
print('$3\t$1\t%.0f\t%.1f\t%d\t%d' % (j['msgs_per_s'], j['broker_cpu_ns_per_msg'], j['lost'], j['duplicated']))" >> "$OUT"
}
for r in $(seq "$ROUNDS"); do
  case $((r % 3)) in
    1) one A "$A" "$r"; one B "$B" "$r"; one A2 "$A2" "$r" ;;
    2) one B "$B" "$r"; one A2 "$A2" "$r"; one A "$A" "$r" ;;
    0) one A2 "$A2" "$r"; one A "$A" "$r"; one B "$B" "$r" ;;
  esac
done
python3 - "$OUT" <<'PY'
import statistics as st, sys
by = {}
for line in list(open(sys.argv[1]))[1:]:
    r, b, *v = line.rstrip('\n').split('\t')
    by.setdefault(r, {})[b] = [float(x) for x in v]
rounds = [p for p in by.values() if len(p) == 3]
for label in ['B', 'A2']:
    for i, name in [(0, 'msgs/s'), (1, 'cpu/msg')]:
        ratios = [p[label][i] / p['A'][i] for p in rounds if p['A'][i]]
        print('%s/A %s: median %.3f, range %.2f to %.2f' % (label, name, st.median(ratios), min(ratios), max(ratios)))
for label in ['A', 'B', 'A2']:
    print('%s: median %.0f msgs/s, %.1f ns of broker CPU per message' % (
        label, st.median(p[label][0] for p in rounds), st.median(p[label][1] for p in rounds)))
print('lost', sum(p[l][2] for p in rounds for l in p), 'duplicated', sum(p[l][3] for p in rounds for l in p))
PY
echo "per-run figures: $OUT"
