#!/usr/bin/env bash
# A paused follower falling out of the ISR and back in: broker 2 is paused (SIGSTOP:
# alive, not fetching); after replica.lag.time.max.ms (2 s here, 30 s by default) the
# controller drops it from the ISR; resumed, it catches up and rejoins.
set -euo pipefail
source "$(dirname "$0")/cluster-common.sh"

$kcli cluster init --brokers 3 -c replica.lag.time.max.ms=2000 >/dev/null
$kcli topic create events -r 3 >/dev/null
$kcli cluster up >/dev/null
seq 1 100 | $kcli produce events --acks all --quiet
$kcli broker pause 2 >/dev/null
seq 101 200 | $kcli produce events --acks 1 --quiet
show "broker 2 paused, 100 more records written with acks=1"
began=$SECONDS
wait_for "2 in p['isr']" "False"
show "after about $((SECONDS - began + 1)) s: broker 2 left the ISR, the high watermark moved on without it"
$kcli broker resume 2 >/dev/null
wait_for "2 in p['isr']" "True"
show "broker 2 resumed: caught up and back in the ISR"
