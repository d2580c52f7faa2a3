#!/usr/bin/env bash
# The auto-commit hazard: a consumer that dies between two auto-commits leaves its
# partition's committed offset behind what it processed, so the partition's next owner reads
# those records again. Committing right after processing (--commit sync) closes the gap.
#
# Two groups read the same partition: 'auto' commits every auto.commit.interval.ms (inside
# poll), 'sync' after each batch it prints. Each group's member reads 1000 records, 'auto'
# auto-commits them, 200 more arrive and are read, and both members are killed (SIGKILL)
# before 'auto' commits again. A new member of each group waits for the dead one's session
# to expire, then starts at its group's committed offset; 100 more records arrive meanwhile.
# Runs in a temporary data directory of its own.
set -euo pipefail
kcli=${KCLI:-kcli}
export KCLI_DATA_DIR=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$KCLI_DATA_DIR"' EXIT
interval=3000  # auto.commit.interval.ms (Kafka's default is 5000)
member=(--auto-commit-interval-ms "$interval" -X session.timeout.ms=6000 -X heartbeat.interval.ms=500)
dir=$KCLI_DATA_DIR

committed() {  # $1 = group: its committed offset of payments-0
    $kcli group describe "$1" | awk '$1 == "payments" { print $3 }'
}
wait_until() {  # $1 = what, then a command that must succeed within 15 s
    local what=$1; shift
    for _ in $(seq 150); do "$@" && return 0; sleep 0.1; done
    echo "timed out waiting for $what" >&2; exit 1
}
has_lines() { [ "$(wc -l <"$1")" -ge "$2" ]; }
has_committed() { [ "$(committed "$1")" = "$2" ]; }
kill_member() { kill -9 "$1"; wait "$1" 2>/dev/null || true; }

$kcli topic create payments --partitions 1 >/dev/null
seq -f 'payment-%g' 1 1000 | $kcli produce payments --quiet
mkfifo "$dir/more"  # a producer that is already running writes the next records at once
$kcli produce payments --quiet <"$dir/more" &
more=$!
exec 3>"$dir/more"

echo "== first members: 'auto' commits every $interval ms, 'sync' after each batch it prints"
declare -A first next
for mode in auto sync; do
    $kcli consume payments --group "$mode" --from-beginning --commit "$mode" "${member[@]}" \
        2> >(sed -u "s/^/  [$mode, first member] /") >"$dir/$mode.first" &
    first[$mode]=$!
done
next_member() {  # $1 = group, $2 = its committed offset: a new member reads from there to the end (1300)
    echo "== group '$1' committed offset $2; a new member joins, to read offsets $2..1299"
    $kcli consume payments --group "$1" --commit "$1" -n $((1300 - $2)) --timeout 20 --format '%o %v' \
        "${member[@]}" 2> >(sed -u "s/^/  [$1, next member] /") >"$dir/$1.next" &
    next[$1]=$!
}
wait_until "1000 records read" has_lines "$dir/auto.first" 1000
wait_until "the first auto-commit" has_committed auto 1000
echo "'auto' auto-committed offset 1000; 200 more records arrive and both members read them"
seq -f 'payment-%g' 1001 1200 >&3
wait_until "'auto' to read 1200" has_lines "$dir/auto.first" 1200
kill_member "${first[auto]}"  # well within the interval: its next auto-commit never happens
echo "== the 'auto' member was killed (SIGKILL) after reading 1200 records"
next_member auto 1000  # as the first auto-commit left it
wait_until "'sync' to read 1200" has_lines "$dir/sync.first" 1200
wait_until "'sync' to commit 1200" has_committed sync 1200
kill_member "${first[sync]}"
echo "== the 'sync' member was killed (SIGKILL) after reading 1200 records"
next_member sync 1200
seq -f 'payment-%g' 1201 1300 >&3
exec 3>&-
wait "$more" "${next[auto]}" "${next[sync]}"
for mode in auto sync; do
    read -r from _ <"$dir/$mode.next"
    to=$(tail -n 1 "$dir/$mode.next" | cut -d' ' -f1)
    dup=$(cut -d' ' -f2 "$dir/$mode.next" | sort - "$dir/$mode.first" | uniq -d | wc -l)
    echo "commit $mode: first member read $(wc -l <"$dir/$mode.first") then died; the next member read" \
         "$(wc -l <"$dir/$mode.next"), duplicates $dup (offsets $from..$to)"
done
