#!/usr/bin/env bash
# A data directory as a Kafka broker: `kcli serve` on 127.0.0.1, kcat (librdkafka) produces and
# kcli reads what it wrote from the files; kcli produces and kcat reads it over the wire; a kcat
# consumer group commits, and kcli shows the group. Runs in a temporary data directory.
#
#   PORT=19092 bash sample-data/serve-with-kcat.sh        (needs kcat: apt-get install kcat)
set -euo pipefail
kcli=${KCLI:-kcli}
port=${PORT:-19092}
kcat=$(command -v kcat || command -v kafkacat || true)
[ -n "$kcat" ] || { echo "serve-with-kcat.sh: kcat is not installed (apt-get install kcat)" >&2; exit 1; }
export KCLI_DATA_DIR=$(mktemp -d)
server=""
cleanup() { [ -z "$server" ] || kill -TERM "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$KCLI_DATA_DIR"; }
trap cleanup EXIT

$kcli topic create orders --partitions 2
$kcli serve --listen "127.0.0.1:$port" 2>"$KCLI_DATA_DIR/serve.log" &
server=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
b=(-b "127.0.0.1:$port")

echo "== kcat -L: the broker and its topics"
$kcat "${b[@]}" -L | grep -E "broker|topic|partition"

echo "== kcat -P: three keyed records into orders-0 ... and kcli reads them from the files"
printf 'alice:2 apples\nbob:1 pear\nalice:3 plums\n' | $kcat "${b[@]}" -P -t orders -p 0 -K:
$kcli consume orders -p 0 --from-beginning --format '%p %o %k %s'

echo "== kcli produce into orders-1 ... and kcat reads the whole topic over the wire"
printf 'carol:4 figs\n' | $kcli produce orders -p 1 -K : --quiet
$kcat "${b[@]}" -C -t orders -e -q -f '%p %o %k %s\n' | sort

echo "== kcat -G: a consumer group reads and commits; kcli describes the group"
$kcat "${b[@]}" -G shipping orders -e -q -X auto.offset.reset=earliest -f '%p %o %s\n' | sort
$kcli group describe shipping

kill -TERM "$server"; wait "$server"; server=""
echo "== kcli serve stopped: $(tail -n 1 "$KCLI_DATA_DIR/serve.log" | sed 's/^.*kcli serve: //')"
$kcli log verify
