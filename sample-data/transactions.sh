#!/usr/bin/env bash
# Transactions: a transfer writes a debit and a credit to two topics atomically.
# A committed transfer is seen whole by read_committed consumers; an aborted one never
# (read_uncommitted consumers see its records anyway). A producer that died mid-transaction
# is fenced by the next instance with its transactional.id, which aborts what it left open.
# A read_committed reader stops at an open transaction (the last stable offset) and reads
# on once it commits.
# Runs in a temporary data directory of its own.
set -euo pipefail
kcli=${KCLI:-kcli}
python=${PYTHON:-$(dirname "$(command -v "$kcli")")/python}
here=$(cd "$(dirname "$0")" && pwd)
export KCLI_DATA_DIR=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$KCLI_DATA_DIR"' EXIT

$kcli topic create debits --partitions 2 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
$kcli topic create credits --partitions 2 --replication-factor 3 --config min.insync.replicas=2 >/dev/null

$python "$here/transfer.py" bank alice bob 30            # committed
$python "$here/transfer.py" bank bob carol 70 --abort    # aborted
$python "$here/transfer.py" bank carol alice 5 --hang    # dies with its transaction open

show() {  # $1 = isolation level
    echo "$1: $( { $kcli consume debits --from-beginning --isolation-level "$1"; \
                  $kcli consume credits --from-beginning --isolation-level "$1"; } | sort | tr '\n' ';')"
}
echo "== before the zombie is fenced"
show read_committed
show read_uncommitted
$kcli transactions list  # the zombie's transaction is still Ongoing

# the next producer with the same transactional.id fences the dead one and aborts its transfer
$python "$here/transfer.py" bank alice dave 1
echo "== after the next 'bank' producer started (and committed alice -> dave)"
show read_committed
$kcli transactions describe bank

echo "== a transfer in progress: 'payroll' has written its debit and credit, and not committed yet"
dir=$KCLI_DATA_DIR
$python "$here/transfer.py" payroll bank erin 100 --hold "$dir/commit-now" &
payroll=$!
for _ in $(seq 300); do [ -e "$dir/commit-now.open" ] && break; sleep 0.05; done
$kcli transactions describe payroll
# a read_committed reader of debits: its three committed records, one of them payroll's
$kcli consume debits --from-beginning --isolation-level read_committed --follow -n 3 --timeout 20 \
    >"$dir/reader.out" 2>"$dir/reader.err" &
reader=$!
for _ in $(seq 300); do grep -q "held at" "$dir/reader.err" && break; sleep 0.05; done
echo "read_committed reader so far: $(sort "$dir/reader.out" | tr '\n' ';')"
echo "read_committed reader (stderr): $(cat "$dir/reader.err")"
touch "$dir/commit-now"  # payroll commits
wait "$payroll" "$reader"
echo "== after payroll committed"
echo "read_committed reader released: $(sort "$dir/reader.out" | tr '\n' ';')"
$kcli transactions describe payroll
