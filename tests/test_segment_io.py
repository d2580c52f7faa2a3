"""Appends write many batches with one vectored write; more than the system's limit of
buffers per call still lands whole and in order."""

from support import list_offsets, produce, producer_entries
from storage import record_batch as rb


def test_append_of_thousands_of_tiny_batches_in_one_request(broker):
    broker.create_topic("tiny", 1)
    batches = [rb.encode_values([b"v%d" % i], 1_700_000_000_000 + i) for i in range(3000)]
    result = produce(broker, "tiny", 0, batches, acks=1)
    assert (result.base_offset, result.last_offset) == (0, 2999)
    offset = 0
    log = broker.log("tiny", 0)
    values = []
    while offset < 3000:
        data = log.read(offset).records
        for pos, h in rb.iter_batches(data):
            if h.base_offset >= offset:
                assert rb.crc_ok(data, pos, h)
                values.extend(rb.decode_values(data, pos, h))
                offset = h.next_offset
    assert values == [b"v%d" % i for i in range(3000)]
