#!/usr/bin/env bash
# An unclean election losing records, exactly the ones it predicts. Two brokers, RF=2,
# unclean.leader.election.enable=true: broker 1 stops, so the ISR is broker 0 alone and
# what it takes is committed by it alone; then broker 0 dies and broker 1, out of sync,
# is elected: the records only broker 0 had are gone.
set -euo pipefail
source "$(dirname "$0")/cluster-common.sh"

$kcli cluster init --brokers 2 -c replica.lag.time.max.ms=2000 >/dev/null
$kcli topic create ledger -r 2 -c unclean.leader.election.enable=true >/dev/null
$kcli cluster up >/dev/null
seq 1 100 | $kcli produce ledger --acks all --quiet
$kcli broker stop 1 >/dev/null
seq 101 150 | $kcli produce ledger --acks all --quiet
predicted=$(( $(field "p['high_watermark']") - $(field "p['log_end_offsets']['1']") ))
show "broker 1 stopped; broker 0 alone committed 50 more records"
echo "predicted loss if broker 1 is elected now: $predicted records"

$kcli broker kill 0 >/dev/null
$kcli broker start 1 >/dev/null
wait_for "p['leader']" "1"
show "broker 0 killed, broker 1 elected uncleanly"
got=$($kcli consume ledger --from-beginning -e | wc -l)
echo "acknowledged 150 records; consumers read $got; lost $((150 - got)) (predicted $predicted)"
$kcli broker start 0 >/dev/null
wait_for "len(p['isr'])" "2"
show "broker 0 back: it truncated its log to the new leader's and follows it"
