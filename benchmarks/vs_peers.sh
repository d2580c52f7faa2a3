#!/usr/bin/env bash
# kcli beside the peers, in one sitting, on the peers' 1,000,000 x 100-byte input:
#   - the plain-Python write floor (py_append.py) and kcli produce --file (default configs),
#     unkeyed and keyed (--key-separator on "customer-<n>:<line>")
#   - confluent-kafka (librdkafka) producing the same records into Tansu (in memory)
#   - kcli consume --from-beginning (values, and --output json) to /dev/null
# Needs `bash ../shared/peers/setup.sh` (a venv with confluent-kafka and tansu in /tmp/peers).
#   RUNS=3 bash benchmarks/vs_peers.sh
set -euo pipefail
PEERS_DIR=${PEERS_DIR:-$(cd "$(dirname "$0")/../../shared/peers" && pwd)}
source "$PEERS_DIR/env.sh"
RUNS=${RUNS:-3}
KCLI=${KCLI:-$(command -v kcli)}
KPY=$(dirname "$KCLI")/python
work=$(mktemp -d)
trap 'broker_stop; rm -rf "$work"' EXIT
keyed=$work/keyed.txt
awk '{print "customer-" NR%10000 ":" $0}' "$DATA" > "$keyed"
cat "$DATA" "$keyed" >/dev/null
export KCLI_DATA_DIR=$work/kcli-data
fresh="rm -rf $work/kcli-data $work/out; $KCLI topic create t --partitions 3 >/dev/null"

$BENCH -n "$RUNS" --warmup 1 --pre "rm -f $work/out" --label "floor: py_append.py (lines -> os.write 64 KiB)" -- \
  "$V $PEERS_DIR/py_append.py $work/out < $DATA"
$BENCH -n "$RUNS" --warmup 1 --pre "$fresh" --label "kcli produce --file (defaults: idempotent, acks=all, linger.ms=5)" -- \
  "$KCLI produce t --file $DATA -q"
$BENCH -n "$RUNS" --warmup 1 --pre "$fresh" --label "kcli produce --file -X enable.idempotence=false" -- \
  "$KCLI produce t --file $DATA -q -X enable.idempotence=false"
$BENCH -n "$RUNS" --warmup 1 --pre "$fresh" --label "kcli produce --file --key-separator : (keyed)" -- \
  "$KCLI produce t --file $keyed --key-separator : -q"

broker_start
newtopic="t=p\$(date +%s%N); $TANSU topic create --broker tcp://$BOOT --partitions 3 \$t >/dev/null && echo \$t > $work/cur_topic"
$BENCH -n "$RUNS" --pre "$newtopic" --label "confluent-kafka -> tansu (memory), idempotence=false, linger.ms=5" -- \
  "$V $PEERS_DIR/ck_produce.py --bootstrap $BOOT --topic \$(cat $work/cur_topic) -n 1000000 --idempotence false"
broker_stop

rm -rf "$work/kcli-data"; $KCLI topic create c1 >/dev/null; $KCLI produce c1 --file "$DATA" -q
$BENCH -n "$RUNS" --warmup 1 --label "floor: py_append.py to /dev/null" -- "$V $PEERS_DIR/py_append.py /dev/null < $DATA"
$BENCH -n "$RUNS" --warmup 1 --label "kcli consume --from-beginning (values) > /dev/null" -- \
  "$KCLI consume c1 --from-beginning > /dev/null"
$BENCH -n "$RUNS" --warmup 1 --label "kcli consume --from-beginning --output json > /dev/null" -- \
  "$KCLI consume c1 --from-beginning --output json > /dev/null"
$BENCH -n "$RUNS" --warmup 1 --label "kcli consume --group fresh --from-beginning --max-messages 1 (first record)" -- \
  "$KCLI consume c1 --group g\$(date +%s%N) --from-beginning --max-messages 1 > /dev/null 2>&1"
