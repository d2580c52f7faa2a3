#!/usr/bin/env bash
# At-most-once loses records, at-least-once duplicates them: the producer's retries under
# injected faults on the produce path (kcli produce --inject-fault).
#
#   fail-before  the write fails before anything is stored   -> without retries: lost
#   ack-lost     the write is stored, the answer is lost     -> with retries: written twice
#
# Runs in a temporary data directory of its own; prints one summary line per story.
set -euo pipefail
kcli=${KCLI:-kcli}
export KCLI_DATA_DIR=$(mktemp -d)
trap 'rm -rf "$KCLI_DATA_DIR"' EXIT
count=${COUNT:-2000}

$kcli topic create at-most-once --partitions 1 >/dev/null
$kcli topic create at-least-once --partitions 1 >/dev/null

# at most once: retries=0, 20% of requests fail before storing
seq 1 "$count" | $kcli produce at-most-once -X retries=0 -X batch.size=400 \
    --inject-fault fail-before=0.2,seed=11 --quiet 2>/dev/null || true
stored=$($kcli consume at-most-once --from-beginning | wc -l)
echo "at-most-once:  sent $count, stored $stored, lost $((count - stored))"

# at least once: retries on, 20% of requests store the batch but lose the answer
# (idempotence off: with it, the log recognises the retries and keeps one copy)
seq 1 "$count" | $kcli produce at-least-once -X retries=5 -X retry.backoff.ms=1 -X batch.size=400 \
    -X enable.idempotence=false \
    --inject-fault ack-lost=0.2,seed=11 --output json > "$KCLI_DATA_DIR/summary.json"
stored=$($kcli consume at-least-once --from-beginning | wc -l)
distinct=$($kcli consume at-least-once --from-beginning | sort -u | wc -l)
reported=$(sed -E 's/.*"duplicates": ([0-9]+).*/\1/' "$KCLI_DATA_DIR/summary.json")
echo "at-least-once: sent $count, stored $stored, distinct $distinct, duplicates $((stored - distinct)) (producer counted $reported)"

# exactly once per send: the same faults with the idempotent producer (Kafka's default)
$kcli topic create idempotent --partitions 1 >/dev/null
seq 1 "$count" | $kcli produce idempotent -X retries=5 -X retry.backoff.ms=1 -X batch.size=400 \
    --inject-fault ack-lost=0.2,seed=11 --quiet
stored=$($kcli consume idempotent --from-beginning | wc -l)
distinct=$($kcli consume idempotent --from-beginning | sort -u | wc -l)
echo "idempotent:    sent $count, stored $stored, distinct $distinct, duplicates $((stored - distinct))"
