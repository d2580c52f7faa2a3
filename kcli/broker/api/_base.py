"""What every part of the broker API shares: Kafka's sentinel values and the per-item result."""

from __future__ import annotations

from typing import Optional

from kcli.common.errors import KafkaError

# ListOffsets timestamps (Kafka's ListOffsetsRequest)
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_TIMESTAMP = -3  # the offset of the record with the largest timestamp (KIP-734)

READ_UNCOMMITTED = 0  # isolation levels, as on the wire
READ_COMMITTED = 1

COORDINATOR_GROUP = 0  # FindCoordinator key types
COORDINATOR_TRANSACTION = 1

# IncrementalAlterConfigs operations
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3

# DescribeConfigs sources (Kafka's ConfigSource)
SOURCE_TOPIC = "DYNAMIC_TOPIC_CONFIG"
SOURCE_DEFAULT = "DEFAULT_CONFIG"


class _Result:
    error: Optional[KafkaError]

    def raise_for_error(self) -> "_Result":
        if self.error is not None:
            raise self.error
        return self
