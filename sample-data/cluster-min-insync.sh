#!/usr/bin/env bash
# min.insync.replicas refusing writes: RF=3, min.insync.replicas=2 on 3 brokers.
# One broker stopped: acks=all goes on. Two stopped: acks=all is refused with
# NOT_ENOUGH_REPLICAS (nothing written) while acks=1 still succeeds. Restarted: the
# followers catch up and rejoin the ISR.
set -euo pipefail
source "$(dirname "$0")/cluster-common.sh"

$kcli cluster init --brokers 3 -c replica.lag.time.max.ms=2000 >/dev/null
$kcli topic create payments -r 3 -c min.insync.replicas=2 >/dev/null
$kcli cluster up >/dev/null
seq 1 100 | $kcli produce payments --acks all --quiet
echo "3 brokers running: acks=all wrote 100 records"

$kcli broker stop 2 >/dev/null
seq 101 200 | $kcli produce payments --acks all --quiet
echo "broker 2 stopped: acks=all wrote 100 more (ISR $(field "','.join(map(str,p['isr']))"))"

$kcli broker stop 1 >/dev/null
if seq 201 300 | $kcli produce payments --acks all -X delivery.timeout.ms=1500 \
        -X request.timeout.ms=1000 >/dev/null 2>"$KCLI_DATA_DIR/err.txt"; then
    echo "unexpected: acks=all succeeded with one broker running"; exit 1
fi
echo "brokers 1 and 2 stopped: acks=all refused: $(grep -o 'NOT_ENOUGH_REPLICAS[^(]*' "$KCLI_DATA_DIR/err.txt" | head -1)"
seq 301 310 | $kcli produce payments --acks 1 --quiet
echo "acks=1 wrote 10 records; high watermark held at $(field "p['high_watermark']") (ISR below min.insync.replicas)"
show "two brokers stopped"

$kcli broker start 1 >/dev/null
$kcli broker start 2 >/dev/null
wait_for "','.join(map(str,p['isr']))" "0,1,2"
wait_for "p['high_watermark']" "210"
show "restarted: the followers caught up and rejoined the ISR"
echo "consumers see $($kcli consume payments --from-beginning -e | wc -l) records"
