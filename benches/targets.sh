#!/usr/bin/env bash
# Runs the target workloads of issues 3 (streams) and 5 (queues) with `peregrine bench`
# (embedded broker, 100-byte messages) RUNS times each and prints one JSON line per run, prefixed with its name.
#   benches/targets.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
cargo build --release -q
B=./target/release/peregrine
run() {
    local name=$1; shift
    for _ in $(seq "$RUNS"); do
        printf '%s ' "$name"
        "$B" bench "$@" --json 2>/dev/null | tail -1 || true
    done
}
run leader-throughput      --embedded --messages 5000000 --acks leader
run durable-throughput     --embedded --messages 5000000 --acks durable
run leader-latency-10k     latency --embedded --rate 10000 --messages 50000 --acks leader
run durable-latency-10k    latency --embedded --rate 10000 --messages 50000 --acks durable
run routed-4p              --embedded --messages 5000000 --partitions 4
run shard-aware-4p         --embedded --messages 5000000 --partitions 4 --shard-aware
run lag-2gb-cache-256      produce --embedded --messages 20000000 --broker-args "--cache-mb 256"
run queue-throughput       queue --embedded --messages 1000000 --acks durable --batch 1000 --prefetch 100 --shard-aware
run queue-throughput-2q    queue --embedded --messages 1000000 --acks durable --batch 1000 --prefetch 100 --shard-aware --queues 2
run queue-latency-10k      queue-latency --embedded --rate 10000 --messages 100000 --acks durable --shard-aware
