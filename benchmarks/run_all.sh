#!/usr/bin/env bash
# Run every kcli benchmark; results go to benchmarks/results/<UTC time>/ (gitignored):
#   <name>.txt    the printed table and progress
#   <name>.jsonl  one JSON object per measured case
#
#   bash benchmarks/run_all.sh                 # full size (about 10-15 min on 2 cores)
#   QUICK=1 bash benchmarks/run_all.sh         # smoke run, small sizes (about 1 min)
#   PY=/path/to/python bash benchmarks/run_all.sh
# Extra arguments are passed to every script (e.g. --bytecode env).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PY:-/work/venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
OUT=${OUT:-$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"

# the peers' input file (1,000,000 lines of 100 bytes); common.py falls back to gen_data.py
if [ ! -f /tmp/peers/data.txt ] && [ -f /work/shared/peers/gen_data.py ]; then
  mkdir -p /tmp/peers
  "$PY" /work/shared/peers/gen_data.py /tmp/peers/data.txt 1000000
fi

if [ -n "${QUICK:-}" ]; then
  PRODUCE_ARGS=(-n 20000 -r 1); CONSUME_ARGS=(-n 20000 -r 1)
  SEEK_ARGS=(--big 100000 --small 2000 -r 5 --cli-runs 2); STARTUP_ARGS=(-r 3 --warmup 1)
else
  PRODUCE_ARGS=(); CONSUME_ARGS=(); SEEK_ARGS=(); STARTUP_ARGS=()
fi

run() {  # name, args...
  local name=$1; shift
  echo "=== $name ($(date -u +%H:%M:%S))"
  "$PY" "$HERE/$name.py" "$@" --json-out "$OUT/$name.jsonl" 2>&1 | tee "$OUT/$name.txt"
}

{
  echo "host: $(uname -srm), $(nproc) cpus; python: $("$PY" -V 2>&1); load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "git: $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo '?')"
} | tee "$OUT/env.txt"
run startup "${STARTUP_ARGS[@]}" "$@"
run seek "${SEEK_ARGS[@]}" "$@"
run consume_throughput "${CONSUME_ARGS[@]}" "$@"
run produce_throughput "${PRODUCE_ARGS[@]}" "$@"
echo "results in $OUT"
