#!/usr/bin/env bash
# Revenue per customer per hour over the sample orders with kcli Streams (event time from
# created_at, hourly windows, 10 minutes' grace, one final figure per window). Then a late
# order inside the grace (counted) and one beyond it (dropped), and a record that moves
# stream time on so the windows close. Runs on a fresh data directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kcli=${KCLI:-kcli}
export KCLI_DATA_DIR="${KCLI_DATA_DIR:-$(mktemp -d)}"
customer=customer-0042

$kcli topic create orders --partitions 3 --if-not-exists >/dev/null
$kcli topic create revenue-per-hour --partitions 3 --if-not-exists >/dev/null
head -n 2000 "$here/orders.jsonl" | $kcli produce orders --input-format json >/dev/null
last=$(head -n 2000 "$here/orders.jsonl" | tail -n 1 | sed 's/.*"created_at":"\([^"]*\)".*/\1/')
echo "2000 orders up to $last"

# the hour of the last order; a late order 5 minutes into it (inside the grace once the next
# hour has begun) and one in the hour before (beyond the grace)
hour=${last:0:13}
prev=$(python3 -c "import datetime as d; t=d.datetime.fromisoformat('$hour:00:00'); print((t-d.timedelta(hours=3)).strftime('%Y-%m-%dT%H'))")
next=$(python3 -c "import datetime as d; t=d.datetime.fromisoformat('$hour:00:00'); print((t+d.timedelta(hours=1)).strftime('%Y-%m-%dT%H'))")
later=$(python3 -c "import datetime as d; t=d.datetime.fromisoformat('$hour:00:00'); print((t+d.timedelta(hours=3)).strftime('%Y-%m-%dT%H'))")
order() { printf '{"key":"%s","value":{"order_id":"%s","customer":"%s","total":%s,"created_at":"%s"}}\n' "$1" "$2" "$1" "$3" "$4"; }
{
  order "$customer" late-in 1000.0 "$hour:05:00Z"          # its hour is still open (grace)
  order "$customer" on-time 1.0 "$next:05:00Z"             # the next hour begins
  order "$customer" late-in-grace 500.0 "$hour:30:00Z"     # 5 minutes past the hour's end: within 10 min
  order "$customer" late-out 9999.0 "$prev:30:00Z"         # hours ago: beyond the grace, dropped
  order "$customer" tick 0.0 "$later:00:00Z"               # moves its partition's stream time on: windows close
} | $kcli produce orders --input-format json >/dev/null

$kcli streams run "$here/streams_revenue.py" --application-id revenue --until-idle 2 -q
echo "final hourly revenue of $customer:"
$kcli consume revenue-per-hour --from-beginning --format '%k %v' --timeout 1 2>/dev/null | grep "^$customer@" | sort
echo "late order inside grace: counted in $customer@$hour; beyond grace ($prev): dropped"
