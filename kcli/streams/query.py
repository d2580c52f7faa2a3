"""Interactive queries from outside the application: a store's committed contents, the last
value per key of its changelog (read_committed), through the public Consumer."""

from __future__ import annotations

from .serdes import serde_of
from .state import changelog_topic


def read_store(data_dir: str, app_id: str, store: str, key_serde="str", value_serde="long", key=None, *,
               config=None):
    """``config``: client settings, e.g. ``bootstrap.servers`` to read from a cluster."""
    from kcli import Consumer
    from kcli.types import TopicPartition

    topic = changelog_topic(app_id, store)
    ks, vs = serde_of(key_serde), serde_of(value_serde)
    conf = {**(config or {}), "isolation.level": "read_committed", "enable.auto.commit": False,
            "auto.offset.reset": "earliest"}
    with Consumer(conf, data_dir=data_dir) as c:
        if topic not in c.list_topics():
            raise ValueError(f"application {app_id} has no store {store} (no topic {topic})")
        parts = c.partitions_for_topic(topic)
        c.assign(parts)
        c.seek_to_beginning(*parts)
        ends = c.end_offsets(parts)
        latest: dict[bytes, bytes | None] = {}
        while any(c.position(tp) < ends[tp] for tp in parts):
            for k, v in c.poll_made(lambda t, p, o, ts, tt, k, v, h: (k, v), timeout=0.2):
                latest[k] = v
    want = None if key is None else ks.serialize(key)
    out = []
    for kb, vb in sorted(latest.items(), key=lambda kv: kv[0] or b""):
        if vb is None or (want is not None and kb != want):
            continue
        out.append((ks.deserialize(kb), vs.deserialize(vb)))
    return out
