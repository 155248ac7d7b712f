#!/bin/bash
# What enveloping and signing cost SNS fan-out (benches/RESULTS.md, "SNS fan-out:
# enveloped and signed deliveries"): `peregrine bench sns --embedded --broker-shards 2`
# in four settings, rotated within each round so that the machine's drift spreads over
# all of them:
#   raw       queues subscribed with RawMessageDelivery=true (nothing to sign)
#   envelope  --sns-envelope with the broker's --sns-signing off (the JSON envelope only)
#   signed    --sns-envelope with the default --sns-signing all (SignatureVersion 1)
#   signed-v2 the same with the topic's SignatureVersion 2 (--sns-signature-version 2)
# Prints one line per run (delivered msgs/s over the three queues, broker CPU per
# delivered copy) and the median of each setting.
#
#   benches/sns_envelope.sh BIN ROUNDS RAW_MESSAGES SIGNED_MESSAGES
#
# SIGNED_MESSAGES is smaller (both signed settings): a signed fan-out is bounded by one
# signature per message.
set -u
BIN=$1; ROUNDS=$2; N_RAW=$3; N_SIGNED=$4
OUT=$(mktemp "${TMPDIR:-/tmp}/sns_envelope.XXXX")
run() { # setting messages extra-args...
  local setting=$1 n=$2; shift 2
  "$BIN" bench sns --embedded --broker-shards 2 --messages "$n" --json "$@" 2> /dev/null |
    tail -1 | python3 -c "
import json, sys
r = json.load(sys.stdin)
assert r['lost'] == 0 and r['duplicated'] == 0, r
print('$setting', round(r['msgs_per_s']), round(r.get('broker_cpu_ns_per_msg', 0) / 1000, 1))
" | tee -a "$OUT"
}
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  run raw "$N_RAW"
  run envelope "$N_RAW" --sns-envelope --broker-args "--sns-signing off"
  run signed "$N_SIGNED" --sns-envelope
  run signed-v2 "$N_SIGNED" --sns-envelope --sns-signature-version 2
done
echo "medians (delivered msgs/s over 3 queues, broker CPU us per delivered copy):"
python3 - "$OUT" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for setting in ("raw", "envelope", "signed", "signed-v2"):
    got = [r for r in rows if r[0] == setting]
    rate = statistics.median(float(r[1]) for r in got)
    cpu = statistics.median(float(r[2]) for r in got)
    print(f"{setting:9} {rate:9.0f} msgs/s  {cpu:7.1f} us  ({len(got)} runs)")
PY
