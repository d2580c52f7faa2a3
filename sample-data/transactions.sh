#!/usr/bin/env bash
# Transactions: a transfer writes a debit and a credit to two topics atomically.
# A committed transfer is seen whole by read_committed consumers; an aborted one never
# (read_uncommitted consumers see its records anyway). A producer that died mid-transaction
# is fenced by the next instance with its transactional.id, which aborts what it left open.
# Runs in a temporary data directory of its own.
set -euo pipefail
kcli=${KCLI:-kcli}
python=${PYTHON:-$(dirname "$(command -v "$kcli")")/python}
here=$(cd "$(dirname "$0")" && pwd)
export KCLI_DATA_DIR=$(mktemp -d)
trap 'rm -rf "$KCLI_DATA_DIR"' EXIT

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

# the next producer with the same transactional.id fences the dead one and aborts its transfer
$python "$here/transfer.py" bank alice dave 1
echo "== after the next 'bank' producer started (and committed alice -> dave)"
show read_committed
$kcli transactions describe bank
