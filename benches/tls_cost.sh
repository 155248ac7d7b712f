#!/usr/bin/env bash
# What TLS costs the native protocol: `peregrine bench throughput` and `latency`, each
# round once over plaintext and once over TLS (an embedded broker per run, the TLS one
# with --native-tls-addr), alternating so that both see the same machine noise.
# Prints each run's JSON line and the medians per mode and transport.
#
#   benches/tls_cost.sh                 # release binary, 3 rounds
#   ROUNDS=5 MESSAGES=2000000 SIZE=1024 BIN=target/release/peregrine benches/tls_cost.sh
set -euo pipefail
BIN=${BIN:-target/release/peregrine}
ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-1000000}
RATE=${RATE:-10000}
LATENCY_MESSAGES=${LATENCY_MESSAGES:-100000}
SHARDS=${SHARDS:-2}
SIZE=${SIZE:-100}

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

tls_args=(--broker-args "--tls-cert $dir/server.pem --tls-key $dir/server.key --native-tls-addr 127.0.0.1:0"
  --tls-ca "$dir/ca.pem")
out="$dir/runs.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  for transport in plain tls; do
    extra=()
    [ "$transport" = tls ] && extra=("${tls_args[@]}")
    line=$("$BIN" bench throughput --embedded --broker-shards "$SHARDS" --messages "$MESSAGES" --size "$SIZE" --json "${extra[@]}")
    echo "{\"round\":$round,\"transport\":\"$transport\",\"mode\":\"throughput\",\"run\":$line}" | tee -a "$out"
    line=$("$BIN" bench latency --embedded --broker-shards "$SHARDS" --rate "$RATE" --messages "$LATENCY_MESSAGES" --size "$SIZE" --json "${extra[@]}")
    echo "{\"round\":$round,\"transport\":\"$transport\",\"mode\":\"latency\",\"run\":$line}" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")
for mode in ("throughput", "latency"):
    row = {}
    for t in ("plain", "tls"):
        rs = [r["run"] for r in runs if r["mode"] == mode and r["transport"] == t]
        row[t] = {
            "msgs_per_s": med([r["msgs_per_s"] for r in rs]),
            "mb_per_s": med([r["mb_per_s"] for r in rs]),
            "cpu_ns_per_msg": med([r.get("broker_cpu_ns_per_msg") for r in rs]),
            "e2e_p50_us": med([(r.get("e2e_us") or {}).get("p50") for r in rs]),
            "e2e_p99_us": med([(r.get("e2e_us") or {}).get("p99") for r in rs]),
            "ack_p50_us": med([(r.get("ack_us") or {}).get("p50") for r in rs]),
            "ack_p99_us": med([(r.get("ack_us") or {}).get("p99") for r in rs]),
        }
    print(f"{mode}: medians of {len(rs)} rounds")
    for k in row["plain"]:
        p, t = row["plain"][k], row["tls"][k]
        print(f"  {k:<15} plain {p:>12.1f}  tls {t:>12.1f}  tls/plain {t / p if p else float('nan'):.3f}")
PY
