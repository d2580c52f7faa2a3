#!/usr/bin/env bash
# The auto-commit hazard: a consumer that dies between auto-commits leaves its partition's
# committed offset behind, so the partition's next owner reads those records again.
# Committing right after processing (--commit sync) closes the gap.
#
# For each commit mode: a group member reads 1000 records and is killed (SIGKILL) before
# its next auto-commit; then 200 more records arrive and a new member of the group takes
# the partition over. Runs in a temporary data directory of its own.
set -euo pipefail
kcli=${KCLI:-kcli}
export KCLI_DATA_DIR=$(mktemp -d)
trap 'rm -rf "$KCLI_DATA_DIR"' EXIT
member=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=500)

run_case() {  # $1 = commit mode, $2 = group (and topic)
    local out="$KCLI_DATA_DIR/$2.first" again="$KCLI_DATA_DIR/$2.next"
    $kcli topic create "$2" --partitions 1 >/dev/null
    seq -f 'payment-%g' 1 1000 | $kcli produce "$2" --quiet
    $kcli consume "$2" --group "$2" --from-beginning --commit "$1" \
        --auto-commit-interval-ms 60000 "${member[@]}" >"$out" 2>/dev/null &
    local pid=$!
    for _ in $(seq 300); do [ "$(wc -l <"$out")" -ge 1000 ] && break; sleep 0.1; done
    sleep 1                      # processed everything; a sync commit has happened by now
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    seq -f 'payment-%g' 1001 1200 | $kcli produce "$2" --quiet
    # the next owner waits for the dead member's session to expire, then takes over
    $kcli consume "$2" --group "$2" --from-beginning --commit "$1" --timeout 8 "${member[@]}" \
        >"$again" 2>/dev/null
    local dup
    dup=$(sort "$out" "$again" | uniq -d | wc -l)
    echo "commit $1: first member read $(wc -l <"$out") then died; the next member read $(wc -l <"$again"), duplicates $dup"
}

run_case auto payments-auto
run_case sync payments-sync
