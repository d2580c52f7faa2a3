#!/usr/bin/env bash
# kcli quickstart: create a topic, produce 10,000 sample orders keyed by customer,
# read some back, and look at the log. Runs on $KCLI_DATA_DIR (default ./kcli-data).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kcli=${KCLI:-kcli}

echo "== create the topic (3 partitions, one day of retention)"
$kcli topic create orders --partitions 3 --config retention.ms=86400000 --if-not-exists
$kcli topic describe orders

echo
echo "== produce 10,000 orders keyed by customer (JSON lines: key, value, headers)"
$kcli produce orders --input-format json --file "$here/orders.jsonl"

echo
echo "== the first 3 records of partition 0: offset, key, value"
$kcli consume orders --partition 0 --from-beginning --max-messages 3 --format '%o %k %v'

echo
echo "== every order of customer-0042 went to one partition (murmur2 of the key, as Kafka does)"
$kcli consume orders --from-beginning --format '%k %p' | grep '^customer-0042 ' | sort | uniq -c

echo
echo "== offsets and sizes per partition"
$kcli topic describe orders

echo
echo "== check every batch's CRC and offset continuity"
$kcli log verify orders
