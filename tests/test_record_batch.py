"""RecordBatch v2 codec, checked against kafka-python's independent implementation.

kafka-python (``kafka.record``) has its own encoder (``DefaultRecordBatchBuilder``) and
parser (``DefaultRecordBatch`` / ``MemoryRecords``) with its own CRC-32C and codec framing,
so agreement with it in both directions, for every codec, pins the wire format.
Vectors come from Kafka's own tests (see /work/shared/kafka-reference.md, sections 1 and 2).
"""

from __future__ import annotations

import os
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from storage import compression
from storage import record_batch as rb
from storage.checksum import crc32c
from storage.varint import decode_varint, encode_varint

CODECS = {
    "none": compression.NONE,
    "gzip": compression.GZIP,
    "snappy": compression.SNAPPY,
    "lz4": compression.LZ4,
    "zstd": compression.ZSTD,
}
CODEC_PARAMS = pytest.mark.parametrize("codec_name", list(CODECS))

BASE_TS = 1_700_000_000_000


# --------------------------------------------------------------------------- helpers


def kp_batches(buf: bytes) -> list[DefaultRecordBatch]:
    """Every batch kafka-python's MemoryRecords finds in ``buf``."""
    records = MemoryRecords(bytes(buf))
    out = []
    while records.has_next():
        out.append(records.next_batch())
    return out


def kp_records(batch: DefaultRecordBatch) -> list[tuple]:
    """(offset, timestamp, timestamp_type, key, value, headers) of each record, via kafka-python."""
    return [
        (r.offset, r.timestamp, r.timestamp_type, r.key, r.value, [tuple(h) for h in r.headers])
        for r in batch
    ]


def kcli_decode_all(buf) -> list[tuple[rb.BatchHeader, list[rb.Record]]]:
    out = []
    for pos, header in rb.iter_batches(buf):
        assert rb.crc_ok(buf, pos, header), f"CRC of batch at {pos} does not validate"
        out.append((header, rb.decode_records(buf, pos, header)))
    return out


def sample_records() -> list[tuple]:
    """Records covering the awkward cases: null key, tombstone, empty value, unicode,
    headers with null values, timestamps that go up and down within the batch."""
    return [
        (b"k", b"v", BASE_TS, ()),
        (None, b"hello", BASE_TS + 5, (("h1", b"x"), ("h2", None))),
        (b"tombstone-key", None, BASE_TS + 3, ()),
        (b"", b"", BASE_TS - 1000, (("empty", b""),)),
        ("ключ-🔑".encode(), "значение ✓ 日本語".encode(), BASE_TS + 86_400_000, (("ünïcødé-hdr ☃", "vâl".encode()),)),
        (None, None, BASE_TS + 7, (("a", None), ("a", b"dup-key"), ("", b"empty-name"))),
        (b"\x00\xff" * 40, os.urandom(300), BASE_TS + 1, ()),
    ]


# --------------------------------------------------------------------------- 1. kcli -> kafka-python


@CODEC_PARAMS
def test_kcli_batches_decode_with_kafka_python_for_every_codec(codec_name):
    codec = CODECS[codec_name]
    records = sample_records()
    batch = rb.encode_batch(
        records,
        base_offset=1234,
        compression_type=codec,
        producer_id=987654321,
        producer_epoch=7,
        base_sequence=42,
        transactional=True,
        partition_leader_epoch=3,
    )
    [kb] = kp_batches(batch)
    assert kb.validate_crc()
    assert kb.magic == 2
    assert kb.compression_type == codec
    assert kb.base_offset == 1234
    assert kb.leader_epoch == 3
    assert kb.last_offset_delta == len(records) - 1
    assert kb.records_count == len(records)
    assert kb.producer_id == 987654321
    assert kb.producer_epoch == 7
    assert kb.base_sequence == 42
    assert kb.is_transactional is True
    assert kb.is_control_batch is False
    assert kb.timestamp_type == 0
    assert kb.first_timestamp == BASE_TS
    assert kb.max_timestamp == BASE_TS + 86_400_000
    expected = [
        (1234 + i, ts, 0, key, value, list(headers))
        for i, (key, value, ts, headers) in enumerate(records)
    ]
    assert kp_records(kb) == expected


@CODEC_PARAMS
def test_kcli_non_transactional_batch_has_kafka_sentinels_in_kafka_python(codec_name):
    batch = rb.encode_batch([(None, b"x", BASE_TS, ())], compression_type=CODECS[codec_name])
    [kb] = kp_batches(batch)
    assert kb.validate_crc()
    assert kb.producer_id == -1
    assert kb.producer_epoch == -1
    assert kb.base_sequence == -1
    assert kb.leader_epoch == -1
    assert kb.is_transactional is False
    assert kb.is_control_batch is False
    assert kp_records(kb) == [(0, BASE_TS, 0, None, b"x", [])]


@CODEC_PARAMS
def test_kcli_large_batches_cross_codec_block_boundaries_and_decode_with_kafka_python(codec_name):
    # > 64 KiB (lz4 block) and > 32 KiB (xerial snappy block) of record data
    values = [os.urandom(500) + bytes([i % 256]) * 500 for i in range(300)]
    records = [(str(i).encode(), v, BASE_TS + i, ()) for i, v in enumerate(values)]
    batch = rb.encode_batch(records, compression_type=CODECS[codec_name])
    [kb] = kp_batches(batch)
    assert kb.validate_crc()
    got = kp_records(kb)
    assert [r[3] for r in got] == [str(i).encode() for i in range(300)]
    assert [r[4] for r in got] == values
    assert [r[1] for r in got] == [BASE_TS + i for i in range(300)]


@CODEC_PARAMS
def test_kcli_log_append_time_batch_reports_append_time_in_kafka_python(codec_name):
    records = sample_records()
    batch = bytearray(rb.encode_batch(records, base_offset=10, compression_type=CODECS[codec_name]))
    append_time = BASE_TS + 999_999
    rb.set_log_append_time(batch, append_time)
    [kb] = kp_batches(batch)
    assert kb.validate_crc()
    assert kb.timestamp_type == 1
    assert kb.max_timestamp == append_time
    assert kb.first_timestamp == BASE_TS  # record deltas are kept
    got = kp_records(kb)
    assert [r[1] for r in got] == [append_time] * len(records)
    assert [r[2] for r in got] == [1] * len(records)
    assert [(r[3], r[4]) for r in got] == [(k, v) for k, v, _, _ in records]
    # kcli's own decoder agrees: every record reports the append time
    [(header, decoded)] = kcli_decode_all(batch)
    assert header.timestamp_type == rb.LOG_APPEND_TIME
    assert [r.timestamp for r in decoded] == [append_time] * len(records)


def test_kcli_log_append_time_can_be_encoded_directly_and_kafka_python_agrees():
    batch = rb.encode_batch(
        [(None, b"a", BASE_TS, ()), (None, b"b", BASE_TS + 10, ())], timestamp_type=rb.LOG_APPEND_TIME
    )
    [kb] = kp_batches(batch)
    assert kb.validate_crc()
    assert kb.timestamp_type == 1
    assert [r[1] for r in kp_records(kb)] == [BASE_TS + 10, BASE_TS + 10]


def test_set_base_offset_keeps_crc_valid_and_kafka_python_sees_new_offsets():
    batch = bytearray(rb.encode_batch(sample_records()))
    crc_before = rb.read_header(batch).crc
    rb.set_base_offset(batch, 5_000_000_000)
    [kb] = kp_batches(batch)
    assert kb.validate_crc()
    assert kb.crc == crc_before
    assert [r[0] for r in kp_records(kb)] == [5_000_000_000 + i for i in range(len(sample_records()))]


@pytest.mark.parametrize("control_type,name", [(rb.ABORT, "abort"), (rb.COMMIT, "commit")])
def test_kcli_control_batch_is_a_transaction_marker_for_kafka_python(control_type, name):
    batch = rb.encode_control_batch(
        control_type, producer_id=4242, producer_epoch=3, coordinator_epoch=17, timestamp=BASE_TS, base_offset=99
    )
    [kb] = kp_batches(batch)
    assert kb.validate_crc()
    assert kb.is_control_batch is True
    assert kb.is_transactional is True
    assert kb.producer_id == 4242
    assert kb.producer_epoch == 3
    assert kb.base_sequence == -1
    assert kb.compression_type == 0
    assert kb.records_count == 1
    [rec] = list(kb)
    assert rec.offset == 99
    assert rec.type == control_type
    assert getattr(rec, name) is True
    assert rec.version == 0
    assert rec.value == struct.pack(">hi", 0, 17)
    assert rb.control_type_of(rec.key) == control_type


def test_kcli_uncompressed_batch_is_byte_identical_to_kafka_python_builder():
    records = sample_records()
    ours = rb.encode_batch(records, partition_leader_epoch=0)  # kafka-python writes epoch 0
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for i, (key, value, ts, headers) in enumerate(records):
        assert builder.append(i, ts, key, value, list(headers)) is not None
    assert ours == bytes(builder.build())


# --------------------------------------------------------------------------- 2. kafka-python -> kcli


def build_with_kafka_python(records, codec, *, producer=(-1, -1, -1), transactional=False) -> bytes:
    builder = DefaultRecordBatchBuilder(2, codec, transactional, producer[0], producer[1], producer[2], 1 << 22)
    for i, (key, value, ts, headers) in enumerate(records):
        assert builder.append(i, ts, key, value, list(headers)) is not None
    return bytes(builder.build())


@CODEC_PARAMS
def test_kcli_reads_batches_built_by_kafka_python_for_every_codec(codec_name):
    codec = CODECS[codec_name]
    # repetitive values so that kafka-python actually keeps the compression
    # (it falls back to none when compressing does not help)
    records = sample_records() + [(b"rep-%d" % i, b"abcdefgh" * 50, BASE_TS + i, ()) for i in range(40)]
    b1 = build_with_kafka_python(records, codec, producer=(77, 2, 1000), transactional=True)
    tail = records[-10:]
    b2 = bytearray(build_with_kafka_python(tail, codec))
    rb.set_base_offset(b2, len(records))  # baseOffset is outside the CRC
    buf = b1 + bytes(b2)

    decoded = kcli_decode_all(buf)
    assert len(decoded) == 2
    (h1, r1), (h2, r2) = decoded
    assert h1.compression == codec
    assert h2.compression == codec
    assert h1.producer_id == 77 and h1.producer_epoch == 2 and h1.base_sequence == 1000
    assert h1.is_transactional and not h1.is_control
    assert h2.producer_id == -1 and h2.base_sequence == -1 and not h2.is_transactional
    assert h1.records_count == len(records) and h1.last_offset_delta == len(records) - 1
    assert h1.base_timestamp == BASE_TS
    assert h1.max_timestamp == BASE_TS + 86_400_000
    assert h1.timestamp_type == rb.CREATE_TIME
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in r1] == [
        (i, ts, k, v, tuple(h)) for i, (k, v, ts, h) in enumerate(records)
    ]
    assert [r.offset for r in r2] == [len(records) + i for i in range(10)]
    assert [(r.key, r.value, r.timestamp) for r in r2] == [(k, v, ts) for k, v, ts, _ in tail]
    assert h2.next_offset == len(records) + 10


@CODEC_PARAMS
def test_kcli_reads_large_multi_block_kafka_python_batches(codec_name):
    # > 64 KiB (lz4 blocks) and > 32 KiB (xerial snappy blocks) of compressible record data
    records = [(b"k%d" % i, (b"%06d-" % i) * 40 + os.urandom(16), BASE_TS + i * 3, (("n", b"%d" % i),))
               for i in range(600)]
    buf = build_with_kafka_python(records, CODECS[codec_name])
    [(header, decoded)] = kcli_decode_all(buf)
    assert header.compression == CODECS[codec_name]
    assert header.records_count == 600
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in decoded] == [
        (i, ts, k, v, h) for i, (k, v, ts, h) in enumerate(records)
    ]


def test_kcli_reads_kafka_python_batch_with_leader_epoch_zero_and_log_append_time():
    b = bytearray(build_with_kafka_python([(b"a", b"1", BASE_TS, ()), (b"b", b"2", BASE_TS + 4, ())], 0))
    rb.set_log_append_time(b, BASE_TS + 500)
    [(header, records)] = kcli_decode_all(b)
    assert header.partition_leader_epoch == 0
    assert header.timestamp_type == rb.LOG_APPEND_TIME
    assert [r.timestamp for r in records] == [BASE_TS + 500, BASE_TS + 500]
    # kafka-python agrees with what kcli stamped
    [kb] = kp_batches(b)
    assert kb.validate_crc()
    assert [r[1] for r in kp_records(kb)] == [BASE_TS + 500, BASE_TS + 500]


# --------------------------------------------------------------------------- 3. real segment files


def segment_path(data_dir: str, topic: str, partition: int) -> str:
    return os.path.join(data_dir, "brokers", "0", f"{topic}-{partition}", "00000000000000000000.log")


@CODEC_PARAMS
def test_producer_segment_files_parse_completely_with_kafka_python(broker, data_dir, codec_name):
    from kcli.producer import Producer

    topic = f"seg-{codec_name}"
    broker.create_topic(topic, 2)
    sent: dict[int, list[tuple]] = {0: [], 1: []}
    now = int(time.time() * 1000)
    with Producer(
        {"compression.type": codec_name, "batch.size": 2048, "linger.ms": 0}, data_dir=data_dir
    ) as producer:
        futures = []
        for i in range(150):
            key = None if i % 5 == 0 else f"key-{i % 17}".encode()
            value = None if i % 23 == 7 else (f"value-{i}-" + "ü" * (i % 13)).encode()
            headers = (("idx", str(i).encode()), ("maybe", None if i % 2 else b"even")) if i % 3 == 0 else ()
            ts = now + (i % 11) - 5
            futures.append(((key, value, ts, headers),
                            producer.send(topic, value, key=key, timestamp=ts, headers=headers)))
        # the bulk path (key-less, header-less, one timestamp: encode_values)
        bulk = [b"bulk-%05d" % i for i in range(120)]
        producer.send_many(topic, bulk, partition=1)
        producer.flush()
        for record, fut in futures:
            md = fut.get(10)
            sent[md.partition].append((md.offset, record))

    for p in (0, 1):
        broker.log(topic, p)  # the partition exists
        with open(segment_path(data_dir, topic, p), "rb") as f:
            data = f.read()
        batches = kp_batches(data)
        assert batches, f"no batches in partition {p}"
        got = []
        consumed = 0
        for kb in batches:
            assert kb.validate_crc()
            assert kb.magic == 2
            assert kb.compression_type == CODECS[codec_name]
            assert kb.timestamp_type == 0
            recs = kp_records(kb)
            assert kb.records_count == len(recs)
            got.extend(recs)
            consumed += 12 + struct.unpack_from(">i", data, consumed + 8)[0]
        assert consumed == len(data), "kafka-python must parse the whole segment, with nothing left over"
        assert [r[0] for r in got] == list(range(len(got))), "offsets are contiguous from 0"
        expected_keyed = {off: rec for off, rec in sent[p]}
        for off, ts, _tstype, key, value, headers in got:
            if off in expected_keyed:
                k, v, t, h = expected_keyed.pop(off)
                assert (key, value, ts, headers) == (k, v, t, list(h))
        assert not expected_keyed, f"records acknowledged but missing from partition {p}: {expected_keyed}"
        if p == 1:
            bulk_got = [r[4] for r in got if r[4] is not None and r[4].startswith(b"bulk-")]
            assert bulk_got == bulk
            assert all(r[3] is None and r[5] == [] for r in got if r[4] in set(bulk))
        assert len(got) == len(sent[p]) + (len(bulk) if p == 1 else 0)


def test_log_append_time_topic_segment_reports_append_time_in_kafka_python(broker, data_dir):
    from kcli.producer import Producer

    broker.create_topic("lat", 1, configs={"message.timestamp.type": "LogAppendTime"})
    with Producer({"linger.ms": 0}, data_dir=data_dir) as producer:
        md = producer.send("lat", b"v1", timestamp=1_000).get(10)
        md2 = producer.send("lat", b"v2", key=b"k", timestamp=2_000).get(10)
    assert md.timestamp != 1_000  # the broker's clock, not the record's
    with open(segment_path(data_dir, "lat", 0), "rb") as f:
        batches = kp_batches(f.read())
    assert len(batches) == 2
    got = []
    for kb in batches:
        assert kb.validate_crc()
        assert kb.timestamp_type == 1
        got.extend(kp_records(kb))
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in got] == [
        (0, md.timestamp, 1, None, b"v1"),
        (1, md2.timestamp, 1, b"k", b"v2"),
    ]
    # and the broker's read path returns the same bytes kafka-python parsed
    result = broker.log("lat", 0).read(0)
    [(h, recs)] = kcli_decode_all(result.records)[:1]
    assert recs[0].timestamp == md.timestamp


# --------------------------------------------------------------------------- 4. reference vectors


ZIGZAG_VECTORS = [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (63, "7e"),
    (-64, "7f"),
    (64, "8001"),
    (-65, "8101"),
    (8191, "fe7f"),
    (-8192, "ff7f"),
    (8192, "808001"),
    (1048576, "80808001"),
    (2**31 - 1, "feffffff0f"),
    (-(2**31), "ffffffff0f"),
]


@pytest.mark.parametrize("value,hexbytes", ZIGZAG_VECTORS)
def test_varint_matches_kafka_byte_utils_vectors(value, hexbytes):
    assert encode_varint(value).hex() == hexbytes
    assert decode_varint(bytes.fromhex(hexbytes) + b"\xaa", 0) == (value, len(hexbytes) // 2)


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 2**40, -(2**40) - 1, 2**35])
def test_varlong_round_trips_int64_extremes(value):
    enc = encode_varint(value)
    assert len(enc) <= 10
    assert decode_varint(enc, 0) == (value, len(enc))


def test_varint_decode_rejects_truncated_and_overlong_input():
    with pytest.raises(IndexError):
        decode_varint(b"\x80\x80", 0)
    with pytest.raises(ValueError):
        decode_varint(b"\xff" * 11 + b"\x01", 0)


def test_crc32c_matches_kafka_vector():
    assert crc32c(b"Some String") == 608512271
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value


EXAMPLE_HEX = (
    "00000000000000000000004f00000000026857800a0000000000010000018bcfe568000000018bcfe56805ff"
    "ffffffffffffffffffffffffff0000000210000000026b02760028000a02010a68656c6c6f04046831027804683201"
)


def test_example_batch_matches_reference_bytes_and_crc():
    records = [
        (b"k", b"v", 1700000000000, ()),
        (None, b"hello", 1700000000005, (("h1", b"x"), ("h2", None))),
    ]
    batch = rb.encode_batch(records, partition_leader_epoch=0)
    assert len(batch) == 91
    header = rb.read_header(batch)
    assert header.crc == 1750564874
    assert header.length == 91 - 12
    assert header.records_count == 2
    assert header.max_timestamp == 1700000000005
    assert batch.hex() == EXAMPLE_HEX


@pytest.mark.parametrize(
    "lengths",
    [
        [10] * 5,
        [0] * 3,
        [63] * 300,  # more records than the prefix cache's first 256 rows
        [64, 127, 128, 129],
        [0, 1, 200, 16383, 16384, 20000],  # value-length varints of 1, 2 and 3 bytes
        [5, 5, 5, 6],
        [100] * 20000,  # offset deltas past the small-varint table (16384)
    ],
)
@pytest.mark.parametrize("codec_name", ["none", "gzip"])
def test_encode_values_equals_encode_batch_for_uniform_and_mixed_lengths(lengths, codec_name):
    values = [bytes([i % 251]) * n for i, n in enumerate(lengths)]
    codec = CODECS[codec_name]
    kwargs = dict(base_offset=17, producer_id=5, producer_epoch=1, base_sequence=9, transactional=True,
                  partition_leader_epoch=2)
    fast = rb.encode_values(values, BASE_TS, compression_type=codec, **kwargs)
    slow = rb.encode_batch([(None, v, BASE_TS, ()) for v in values], compression_type=codec, **kwargs)
    assert fast == slow


def test_encode_values_after_many_distinct_lengths_still_equals_encode_batch():
    # exercises the prefix cache past its size bound (it is cleared and rebuilt)
    for n in range(0, 5000, 1):
        if n % 500 == 0 or n > 4090:
            values = [b"z" * n, b"y" * (n + 1), b"z" * n]
            assert rb.encode_values(values, 7) == rb.encode_batch([(None, v, 7, ()) for v in values])
        else:
            rb.encode_values([b"q" * n], 7)


# --------------------------------------------------------------------------- 5. properties

header_st = st.tuples(st.text(st.characters(codec="utf-8"), max_size=12), st.none() | st.binary(max_size=20))
record_st = st.tuples(
    st.none() | st.binary(max_size=40),
    st.none() | st.binary(max_size=80),
    st.integers(min_value=-1, max_value=2**62),
    st.lists(header_st, max_size=3).map(tuple),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(record_st, min_size=1, max_size=12),
    codec=st.sampled_from(list(CODECS.values())),
    base_offset=st.integers(min_value=0, max_value=2**62),
    producer=st.tuples(
        st.integers(min_value=-1, max_value=2**63 - 1),
        st.integers(min_value=-1, max_value=2**15 - 1),
        st.integers(min_value=-1, max_value=2**31 - 1),
    ),
    transactional=st.booleans(),
)
def test_encode_batch_then_decode_records_round_trips_arbitrary_records(
    records, codec, base_offset, producer, transactional
):
    batch = rb.encode_batch(
        records,
        base_offset=base_offset,
        compression_type=codec,
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=producer[2],
        transactional=transactional,
    )
    [(pos, header)] = list(rb.iter_batches(batch))
    assert pos == 0
    assert header.size == len(batch)
    assert rb.crc_ok(batch, 0, header)
    assert header.compression == codec
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == producer
    assert header.is_transactional == transactional
    assert header.base_timestamp == records[0][2]
    assert header.max_timestamp == max(r[2] for r in records)
    decoded = rb.decode_records(batch, 0, header)
    assert [(r.offset, r.key, r.value, r.timestamp, r.headers) for r in decoded] == [
        (base_offset + i, k, v, ts, tuple(h)) for i, (k, v, ts, h) in enumerate(records)
    ]
    # kafka-python reads the very same thing
    [kb] = kp_batches(batch)
    assert kb.validate_crc()
    assert kp_records(kb) == [
        (base_offset + i, ts, 0, k, v, list(h)) for i, (k, v, ts, h) in enumerate(records)
    ]


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.binary(max_size=300), min_size=1, max_size=40)
    | st.integers(min_value=0, max_value=200).flatmap(
        lambda n: st.lists(st.just(b"u" * n), min_size=1, max_size=400)
    ),
    timestamp=st.integers(min_value=-1, max_value=2**62),
    codec=st.sampled_from(list(CODECS.values())),
    base_offset=st.integers(min_value=0, max_value=2**40),
)
def test_encode_values_equals_encode_batch_property(values, timestamp, codec, base_offset):
    fast = rb.encode_values(values, timestamp, base_offset=base_offset, compression_type=codec)
    slow = rb.encode_batch(
        [(None, v, timestamp, ()) for v in values], base_offset=base_offset, compression_type=codec
    )
    assert fast == slow


@pytest.mark.parametrize(
    "key_lengths, value_lengths",
    [
        ([3] * 5, [10] * 5),
        ([10, 11, 12, 13] * 80, [99] * 320),  # several key lengths, more records than 256 rows
        ([0, 1, 63, 64, 200], [5] * 5),  # key-length varints of 1 and 2 bytes
        ([4] * 4, [0, 1, 130, 20000]),  # values of several lengths: the record by record path
        ([7] * 20000, [20] * 20000),  # offset deltas past the small-varint table (16384)
        ([5, 9, 6] * 100, [1, 70, 300, 8000, 2] * 60),  # several lengths: laid out a column at a time
        ([5] * 17000, [i % 50 for i in range(17000)]),  # ... but not past the table's offset deltas
        ([10000, 3], [10000, 4]),  # ... nor for a record whose length is past it
    ],
)
@pytest.mark.parametrize("codec_name", ["none", "gzip"])
def test_encode_keyed_equals_encode_batch_for_uniform_and_mixed_lengths(key_lengths, value_lengths, codec_name):
    keys = [bytes([65 + i % 26]) * n for i, n in enumerate(key_lengths)]
    values = [bytes([i % 251]) * n for i, n in enumerate(value_lengths)]
    codec = CODECS[codec_name]
    kwargs = dict(base_offset=17, producer_id=5, producer_epoch=1, base_sequence=9, transactional=True,
                  partition_leader_epoch=2)
    fast = rb.encode_keyed(keys, values, BASE_TS, compression_type=codec, **kwargs)
    slow = rb.encode_batch([(k, v, BASE_TS, ()) for k, v in zip(keys, values)], compression_type=codec, **kwargs)
    assert fast == slow


def test_encoders_given_the_lengths_write_what_they_write_measuring_themselves():
    keys = [b"k" * (i % 5) for i in range(300)]
    uniform = [b"v" * 40] * 300
    mixed = [b"w" * (i % 70) for i in range(300)]
    for values in (uniform, mixed):
        lengths = [len(v) for v in values]
        assert rb.encode_values(values, BASE_TS, value_lengths=lengths) == rb.encode_values(values, BASE_TS)
        assert rb.encode_keyed(keys, values, BASE_TS, key_lengths=[len(k) for k in keys], value_lengths=lengths) \
            == rb.encode_keyed(keys, values, BASE_TS)


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(st.tuples(st.binary(max_size=80), st.binary(max_size=300)), min_size=1, max_size=40)
    | st.tuples(st.integers(min_value=0, max_value=150), st.integers(min_value=1, max_value=400)).flatmap(
        lambda nv: st.lists(st.binary(min_size=0, max_size=20), min_size=nv[1], max_size=nv[1]).map(
            lambda keys: [(k, b"u" * nv[0]) for k in keys])
    ),
    timestamp=st.integers(min_value=-1, max_value=2**62),
    base_offset=st.integers(min_value=0, max_value=2**40),
)
def test_encode_keyed_equals_encode_batch_property(records, timestamp, base_offset):
    keys, values = [k for k, _ in records], [v for _, v in records]
    fast = rb.encode_keyed(keys, values, timestamp, base_offset=base_offset)
    assert fast == rb.encode_batch([(k, v, timestamp, ()) for k, v in records], base_offset=base_offset)


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=300),
                               st.integers(min_value=-(2**40), max_value=2**40)), min_size=1, max_size=60),
    keyed=st.booleans(),
    base_ts=st.integers(min_value=0, max_value=2**62),
    base_offset=st.integers(min_value=0, max_value=2**40),
)
def test_encode_timed_equals_encode_batch_property(records, keyed, base_ts, base_offset):
    keys = [k for k, _, _ in records] if keyed else None
    values = [v for _, v, _ in records]
    stamps = [base_ts + d for _, _, d in records]
    fast = rb.encode_timed(keys, values, stamps, base_offset=base_offset, producer_id=3, producer_epoch=1,
                           base_sequence=4)
    slow = rb.encode_batch([(k if keyed else None, v, t, ()) for (k, v, _), t in zip(records, stamps)],
                           base_offset=base_offset, producer_id=3, producer_epoch=1, base_sequence=4)
    assert fast == slow


@pytest.mark.parametrize("keyed", [False, True])
def test_encode_timed_equals_encode_batch_past_the_small_varint_table(keyed):
    n = 17000  # offset deltas and record lengths past the 16384 small varints
    values = [b"v" * (20000 if i == 5 else i % 100) for i in range(n)]
    keys = [b"k" * (i % 3) for i in range(n)] if keyed else None
    stamps = [1_700_000_000_000 + (i // 1000) * 7 - (i % 2) for i in range(n)]
    fast = rb.encode_timed(keys, values, stamps, compression_type=CODECS["gzip"])
    slow = rb.encode_batch([(keys[i] if keyed else None, values[i], stamps[i], ()) for i in range(n)],
                           compression_type=CODECS["gzip"])
    assert fast == slow


# --------------------------------------------------------------------------- 6. corruption


def test_flipping_any_crc_covered_byte_makes_crc_ok_false():
    batch = rb.encode_batch(sample_records()[:3], base_offset=3)
    header = rb.read_header(batch)
    assert rb.crc_ok(batch, 0, header)
    for i in range(rb.CRC_START, len(batch)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(batch)
            bad[i] ^= flip
            assert not rb.crc_ok(bad, 0, rb.read_header(bad)), f"byte {i} ^ {flip:#x} went unnoticed"


def test_flipping_the_stored_crc_makes_crc_ok_false():
    batch = rb.encode_batch([(None, b"x", BASE_TS, ())])
    for i in range(17, 21):
        bad = bytearray(batch)
        bad[i] ^= 0x10
        assert not rb.crc_ok(bad, 0, rb.read_header(bad))


def test_base_offset_and_leader_epoch_lie_outside_the_crc():
    batch = rb.encode_batch([(None, b"x", BASE_TS, ())])
    for i in list(range(0, 8)) + list(range(12, 16)):
        changed = bytearray(batch)
        changed[i] ^= 0x5A
        assert rb.crc_ok(changed, 0, rb.read_header(changed)), f"byte {i} is not meant to be CRC-covered"


@CODEC_PARAMS
def test_truncated_buffer_yields_no_partial_batch(codec_name):
    codec = CODECS[codec_name]
    b1 = rb.encode_batch(sample_records(), compression_type=codec)
    b2 = rb.encode_batch(sample_records()[:2], base_offset=7, compression_type=codec)
    buf = b1 + b2
    for cut in range(len(buf) + 1):
        found = list(rb.iter_batches(buf[:cut]))
        if cut < len(b1):
            assert found == [], f"cut at {cut} yielded a partial batch"
        elif cut < len(buf):
            assert [p for p, _ in found] == [0]
        else:
            assert [p for p, _ in found] == [0, len(b1)]
        for pos, header in found:
            assert pos + header.size <= cut
    # the end argument bounds the scan exactly as slicing does
    assert list(rb.iter_batches(buf, 0, len(buf) - 1)) == list(rb.iter_batches(buf[:-1]))


def test_decode_records_rejects_a_record_section_that_does_not_parse():
    batch = bytearray(rb.encode_batch([(b"key", b"value", BASE_TS, ())]))
    # claim a longer key than the record holds, and recompute the CRC so only the structure is wrong
    key_len_pos = rb.HEADER_SIZE + 1 + 1 + 1 + 1
    assert batch[key_len_pos] == encode_varint(3)[0]
    batch[key_len_pos] = encode_varint(50)[0]
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[rb.CRC_START:])))
    header = rb.read_header(batch)
    assert rb.crc_ok(batch, 0, header)
    from kcli.common.errors import CorruptRecordError

    with pytest.raises(CorruptRecordError):
        rb.decode_records(batch, 0, header)


def test_the_small_varint_tables_built_from_byte_patterns_equal_encoding_each_number():
    from storage.varint import encode_varint, small_varints

    assert small_varints(1 << 14) == [encode_varint(n) for n in range(1 << 14)]
    assert small_varints(100) == [encode_varint(n) for n in range(100)]
    with pytest.raises(ValueError):
        small_varints((1 << 14) + 1)
    # the decoder's offset-delta tables: first byte, second byte (0 for one-byte varints),
    # and where the key's length is (after length, attributes, timestamp delta, offset delta)
    half1, kind, high, zigzag, od0, od1, key_at = rb._small_tables()
    ods = [encode_varint(od) for od in range(rb._SMALL_MAX_COUNT)]
    assert od0 == tuple(v[0] for v in ods)
    assert od1 == tuple(v[1] if len(v) > 1 else 0 for v in ods)
    assert key_at == bytes(4 if len(v) == 1 else 5 for v in ods)
