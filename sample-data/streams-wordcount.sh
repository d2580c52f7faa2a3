#!/usr/bin/env bash
# Word count with kcli Streams: two exactly_once_v2 instances of one application share the
# work; one is killed (SIGKILL) half-way and its tasks move to the other, state following
# through the changelog. The final counts equal a count done by hand. Fresh data directory;
# with KCLI_BOOTSTRAP_SERVER=HOST:PORT (or KCLI="kcli -b HOST:PORT") the same against a Kafka
# broker, the data directory then holding only the instances' state. GUARANTEE=at_least_once
# for a broker without transactions (the counts may then include replays after the kill).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kcli=${KCLI:-kcli}
export KCLI_DATA_DIR="${KCLI_DATA_DIR:-$(mktemp -d)}"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

# text: the product names of the sample orders
sed 's/"name":"\([^"]*\)"/\n\1\n/g' "$here/orders.jsonl" | grep -v '[{}]' > "$work/lines.txt"
n=$(wc -l < "$work/lines.txt")
half=$((n / 2))
$kcli topic create lines --partitions 4 >/dev/null
$kcli topic create word-counts --partitions 4 >/dev/null

run() { exec $kcli streams wordcount --input lines --output word-counts --application-id wordcount \
          --guarantee "${GUARANTEE:-exactly_once_v2}" -X session.timeout.ms=6000 -X heartbeat.interval.ms=1000 -q "$@"; }
run & a=$!
run & b=$!
sleep 2
head -n "$half" "$work/lines.txt" | $kcli produce lines >/dev/null
sleep 1
kill -9 "$a"; wait "$a" 2>/dev/null || true
echo "instance $a killed after $half of $n lines"
tail -n +"$((half + 1))" "$work/lines.txt" | $kcli produce lines >/dev/null
# the survivor takes the dead instance's tasks once its session (6 s) runs out
for _ in $(seq 180); do
  lag=$($kcli streams status wordcount -o json | python3 -c 'import json,sys; print(sum(x["lag"] for x in json.load(sys.stdin)["lag"]))')
  [ "$lag" = 0 ] && break
  sleep 0.5
done
$kcli streams status wordcount
kill -TERM "$b"; wait "$b" || true

python3 - "$work/lines.txt" > "$work/expected.txt" <<'PY'
import re, sys, collections
c = collections.Counter(w for line in open(sys.argv[1]) for w in re.split(r"\W+", line.lower()) if w)
for w in sorted(c): print(f"{w}\t{c[w]}")
PY
$kcli streams query wordcount --store counts-store | sort > "$work/got.txt"
sort "$work/expected.txt" > "$work/want.txt"
if diff -q "$work/want.txt" "$work/got.txt" >/dev/null; then
  echo "counts exact: $(wc -l < "$work/got.txt") words, $(awk -F'\t' '{s+=$2} END {print s}' "$work/got.txt") occurrences"
else
  echo "counts differ:"; diff "$work/want.txt" "$work/got.txt" | head; exit 1
fi
