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
# await SECONDS WHAT CONDITION: poll `streams status` until CONDITION (Python, on the status as
# s, its instances as m, the lag per input partition as lag, whose committed is None where
# nothing is committed yet) holds; conditions, not sleeps, so a busy machine only makes it slower
await() {
  local deadline=$((SECONDS + $1))
  until $kcli streams status wordcount -o json 2>/dev/null | python3 -c "import json, sys
try: s = json.load(sys.stdin)
except ValueError: sys.exit(1)
m = s['instances']; lag = {x['partition']: x for x in s['lag']}
sys.exit(0 if ($3) else 1)"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "gave up after $1 s waiting for $2" >&2; $kcli streams status wordcount >&2 || true; exit 1
    fi
    sleep 0.2
  done
}
lines_committed='sum(x["committed"] or 0 for p, x in lag.items() if p.startswith("lines-"))'
run & a=$!
run & b=$!
await 60 "both instances to hold tasks" 's["state"] == "Stable" and len(m) == 2 and all(i["partitions"] for i in m)'
head -n "$half" "$work/lines.txt" | $kcli produce lines >/dev/null
# both have committed work (every line of the first half read) before one is killed
await 60 "the first half to be committed" "$lines_committed >= $half"
kill -9 "$a"; wait "$a" 2>/dev/null || true
echo "instance $a killed after $half of $n lines"
tail -n +"$((half + 1))" "$work/lines.txt" | $kcli produce lines >/dev/null
# the survivor takes the dead instance's tasks once its session (6 s) runs out, restores their
# state from the changelog, and commits every input partition up to its end
await 150 "the survivor to own every task and catch up" \
  's["state"] == "Stable" and len(m) == 1 and len(m[0]["partitions"]) == 8 and set(lag) == set(m[0]["partitions"])
and all(x["lag"] == 0 for x in lag.values()) and '"$lines_committed >= $n"
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
