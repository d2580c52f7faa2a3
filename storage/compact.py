"""``kcli log compact``: run the log cleaner (storage/cleaner.py) on a topic of a data
directory now."""

from __future__ import annotations

from .cleaner import CleanResult, clean, is_compacted, policies  # noqa: F401 (CleanResult: the answer)


def compact_data_dir(root: str, topic: str, partition: int | None = None, *, now: int | None = None,
                     force: bool = True) -> list[CleanResult]:
    """Clean one topic (or one partition of it) of a data directory (``kcli log compact``).
    Raises UNKNOWN_TOPIC_OR_PARTITION; INVALID_CONFIG when the topic is not compacted."""
    from kcli.common.errors import InvalidConfigError, UnknownTopicOrPartitionError

    from .layout import DataDir
    from .log import PartitionLog
    from .metadata import MetadataStore
    from .topics import TopicStore

    datadir = DataDir(root)
    if not datadir.exists():
        raise UnknownTopicOrPartitionError(
            f"no kcli data directory at {datadir.root} (create a topic first, or set --data-dir)")
    out = []
    with MetadataStore(datadir.meta, create=False) as store:
        t = TopicStore(store, datadir).get(topic)
        if partition is not None and not 0 <= partition < t.partitions:
            raise UnknownTopicOrPartitionError(
                f"partition {partition} of topic '{topic}' does not exist (it has partitions 0..{t.partitions - 1})")
        configs = t.effective_configs()
        if not is_compacted(configs):
            raise InvalidConfigError(
                f"topic '{topic}' has cleanup.policy={','.join(policies(configs))}: only topics whose "
                "cleanup.policy includes compact are compacted (kcli topic alter-config ... cleanup.policy=compact)")
        for p in [partition] if partition is not None else range(t.partitions):
            log = PartitionLog(store, topic, p, datadir.partition_dir(topic, p), lambda: configs)
            try:
                out.append(clean(log, now=now, config=configs, force=force))
            finally:
                log.close()
    return out
