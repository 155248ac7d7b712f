#!/bin/bash
# Start-up time (process start to "peregrine ready") on the same data directory:
# OLD (main's release binary) vs NEW (this branch), alternating, clean stop between.
# Usage: OLD=path/to/peregrine NEW=path/to/peregrine [MB=2048] benches/startup_scan.sh
OLD=${OLD:?release binary to compare against}
NEW=${NEW:?release binary under test}
D=${TMPDIR:-/tmp}/peregrine-startup-scan
MB=${MB:-2048}
rm -rf $D; mkdir -p $D
serve() { # $1 binary; sets MS (ms to ready) and PID
  local t0=$(date +%s%N)
  $1 serve --data-dir $D --native-addr 127.0.0.1:0 --kafka-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --amqp-addr 127.0.0.1:0 --shards 2 > $D.out 2>> $D.err & PID=$!
  for i in $(seq 1 6000); do grep -q ready $D.out 2>/dev/null && break; kill -0 $PID || { echo "died"; tail -3 $D.err; exit 1; }; sleep 0.01; done
  MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}
stop() { kill -TERM $PID; wait $PID; }
serve $OLD; A=$(grep -o 'native=[0-9.:]*' $D.out | cut -d= -f2)
$OLD bench produce --bootstrap $A --partitions 1 --size 1000 --messages $((MB * 1000)) --batch 100 --acks leader 2>&1 | grep -i 'msg/s\|messages' | head -2
stop
du -sh $D/topics; ls -la $D/topics/*/0/ | grep -c '\.log'
cp $D/meta/topics.json $D.catalog
for round in 1 2 3 4 5; do
  cp $D.catalog $D/meta/topics.json
  serve $OLD; o=$MS; stop
  serve $NEW; n=$MS; stop
  echo "round $round: old ${o} ms, new ${n} ms"
done
rm -rf $D $D.out $D.err $D.catalog
