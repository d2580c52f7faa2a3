"""Revenue per customer per hour over the sample orders (``kcli streams run``).

Event time is the order's ``created_at``; hourly tumbling windows with 10 minutes' grace;
one final total per customer and hour once the window closes (suppress).
"""

from datetime import datetime

from kcli.streams import Materialized, Produced, Serdes, Suppressed, TimeWindows


def order_time(key, order, record_ts):
    return int(datetime.fromisoformat(order["created_at"].replace("Z", "+00:00")).timestamp() * 1000)


def build(builder):
    (builder.stream("orders", key_serde=Serdes.String(), value_serde=Serdes.Json())
     .group_by_key()
     .windowed_by(TimeWindows.of_size_and_grace(3_600_000, 600_000))
     .aggregate(lambda: 0.0, lambda customer, order, total: round(total + order["total"], 2),
                Materialized.as_("revenue").with_value_serde(Serdes.Double()))
     .suppress(Suppressed.until_window_closes())
     .to_stream(lambda wk, v: f"{wk.key}@{datetime.utcfromtimestamp(wk.window.start / 1000):%Y-%m-%dT%H}")
     .map_values(lambda total: f"{total:.2f}")
     .to("revenue-per-hour", Produced.with_(Serdes.String(), Serdes.String())))


CONFIG = {"default.timestamp.extractor": order_time}
