#!/usr/bin/env bash
# What TLS costs each front end: every `peregrine bench` mode in MODES, each round once
# over plaintext and once over TLS (an embedded broker per run, the TLS one with the
# mode's TLS listener: --native-tls-addr, --amqp-tls-addr or --http-tls-addr),
# alternating so that both see the same machine noise. Prints each run's JSON line,
# then per mode the medians and the median of the per-round TLS/plain ratios.
#
#   benches/tls_cost.sh                           # release binary, 3 rounds, every mode
#   ROUNDS=5 MODES="throughput latency" SIZE=1024 benches/tls_cost.sh
#   MODES="queue amqp sqs" BIN=target/release/peregrine benches/tls_cost.sh
#
# Modes: throughput and latency (native, `--rate RATE`), queue (native), amqp, sqs.
set -euo pipefail
BIN=${BIN:-target/release/peregrine}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-throughput latency queue amqp sqs}
SHARDS=${SHARDS:-2}
SIZE=${SIZE:-100}
MESSAGES=${MESSAGES:-1000000}
RATE=${RATE:-10000}
LATENCY_MESSAGES=${LATENCY_MESSAGES:-100000}
QUEUE_MESSAGES=${QUEUE_MESSAGES:-300000}
AMQP_MESSAGES=${AMQP_MESSAGES:-100000}
SQS_MESSAGES=${SQS_MESSAGES:-50000}

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# A throwaway CA and a server certificate for 127.0.0.1 (valid one day).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=tls-cost-ca -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=localhost -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
  -CAcreateserial -days 1 -extfile "$dir/ext" -out "$dir/server.pem" 2>/dev/null

files="--tls-cert $dir/server.pem --tls-key $dir/server.key"
out="$dir/runs.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    args=()
    case $mode in
      throughput) listener=--native-tls-addr; count=$MESSAGES ;;
      latency) listener=--native-tls-addr; count=$LATENCY_MESSAGES; args=(--rate "$RATE") ;;
      queue) listener=--native-tls-addr; count=$QUEUE_MESSAGES ;;
      amqp) listener=--amqp-tls-addr; count=$AMQP_MESSAGES ;;
      sqs) listener=--http-tls-addr; count=$SQS_MESSAGES ;;
      *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    for transport in plain tls; do
      extra=()
      [ "$transport" = tls ] && extra=(--broker-args "$files $listener 127.0.0.1:0" --tls-ca "$dir/ca.pem")
      line=$("$BIN" bench "$mode" --embedded --broker-shards "$SHARDS" --messages "$count" \
        --size "$SIZE" --json "${args[@]}" "${extra[@]}")
      echo "{\"round\":$round,\"transport\":\"$transport\",\"mode\":\"$mode\",\"run\":$line}" | tee -a "$out"
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")
fields = {
    "msgs_per_s": lambda r: r["msgs_per_s"],
    "mb_per_s": lambda r: r.get("mb_per_s"),
    "cpu_ns_per_msg": lambda r: r.get("broker_cpu_ns_per_msg"),
    "e2e_p50_us": lambda r: (r.get("e2e_us") or {}).get("p50"),
    "e2e_p99_us": lambda r: (r.get("e2e_us") or {}).get("p99"),
    "ack_p50_us": lambda r: (r.get("ack_us") or {}).get("p50"),
    "ack_p99_us": lambda r: (r.get("ack_us") or {}).get("p99"),
}
for mode in dict.fromkeys(r["mode"] for r in runs):
    rounds = sorted({r["round"] for r in runs if r["mode"] == mode})
    by = {(r["round"], r["transport"]): r["run"] for r in runs if r["mode"] == mode}
    print(f"{mode}: {len(rounds)} rounds")
    for name, get in fields.items():
        plain = [get(by[(n, "plain")]) for n in rounds]
        tls = [get(by[(n, "tls")]) for n in rounds]
        if not any(plain) and not any(tls):
            continue
        ratios = [t / p for p, t in zip(plain, tls) if p and t]
        print(f"  {name:<15} plain {med(plain):>12.1f}  tls {med(tls):>12.1f}  "
              f"tls/plain (median of rounds) {med(ratios):.3f}   "
              f"rounds plain {[round(x or 0) for x in plain]} tls {[round(x or 0) for x in tls]}")
PY
