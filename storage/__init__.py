"""kcli's storage engine: Kafka's on-disk log format in segment files, state in LMDB.

Knows nothing about clients or the command line. Modules, one concept each:
``record_batch`` (the RecordBatch v2 codec), ``compression``, ``varint``, ``checksum``,
``segment`` (segment files), ``index`` (offset and time indexes), ``log`` (one partition's
log), ``recovery``, ``retention``, ``metadata`` (the LMDB store), ``topics``,
``topic_config`` and ``errors`` (Kafka's error names and codes).
"""
