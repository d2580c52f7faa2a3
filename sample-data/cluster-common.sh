# Helpers shared by the cluster demos (sourced, not run).
kcli=${KCLI:-kcli}
export KCLI_DATA_DIR=$(mktemp -d)
cleanup() { $kcli cluster down >/dev/null 2>&1 || true; rm -rf "$KCLI_DATA_DIR"; }
trap cleanup EXIT

# field EXPR: one value of `cluster describe --output json` (d is the JSON, p partition 0)
field() {
    $kcli cluster describe --output json | python3 -c \
        "import json,sys; d=json.load(sys.stdin); p=d['partitions'][0] if d['partitions'] else None; print($1)"
}

# wait_for EXPR VALUE [SECONDS]: until field EXPR prints VALUE
wait_for() {
    local deadline=$((SECONDS + ${3:-20}))
    until [ "$(field "$1")" = "$2" ]; do
        if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $1 == $2" >&2; exit 1; fi
        sleep 0.2
    done
}

show() { echo; echo "== $1"; $kcli cluster describe; }
