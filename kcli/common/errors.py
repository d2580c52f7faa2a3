"""Kafka's protocol errors as typed exceptions.

Every error that kcli reports carries Kafka's error name and code, so a user who looks the
name up in Kafka's documentation finds the same meaning. The storage layer raises them; the
broker and client layers pass them through; the CLI prints ``NAME: message`` on one line.
"""

from __future__ import annotations


class KafkaError(Exception):
    """Base class: ``code`` and ``name`` are Kafka's (``Errors.java``)."""

    code = -1
    name = "UNKNOWN_SERVER_ERROR"
    retriable = False

    def __str__(self) -> str:  # "NAME: message" reads well on one line of stderr
        msg = super().__str__()
        return f"{self.name}: {msg}" if msg else self.name


_BY_CODE: dict[int, type[KafkaError]] = {}


def _error(class_name: str, code: int, name: str, retriable: bool = False) -> type[KafkaError]:
    cls = type(class_name, (KafkaError,), {"code": code, "name": name, "retriable": retriable})
    _BY_CODE[code] = cls
    return cls


UnknownServerError = _error("UnknownServerError", -1, "UNKNOWN_SERVER_ERROR")
OffsetOutOfRangeError = _error("OffsetOutOfRangeError", 1, "OFFSET_OUT_OF_RANGE")
CorruptRecordError = _error("CorruptRecordError", 2, "CORRUPT_MESSAGE", retriable=True)
UnknownTopicOrPartitionError = _error("UnknownTopicOrPartitionError", 3, "UNKNOWN_TOPIC_OR_PARTITION", True)
InvalidFetchSizeError = _error("InvalidFetchSizeError", 4, "INVALID_FETCH_SIZE")
LeaderNotAvailableError = _error("LeaderNotAvailableError", 5, "LEADER_NOT_AVAILABLE", True)
NotLeaderOrFollowerError = _error("NotLeaderOrFollowerError", 6, "NOT_LEADER_OR_FOLLOWER", True)
RequestTimedOutError = _error("RequestTimedOutError", 7, "REQUEST_TIMED_OUT", True)
RecordTooLargeError = _error("RecordTooLargeError", 10, "MESSAGE_TOO_LARGE")
NetworkError = _error("NetworkError", 13, "NETWORK_EXCEPTION", True)
OffsetMetadataTooLargeError = _error("OffsetMetadataTooLargeError", 12, "OFFSET_METADATA_TOO_LARGE")
CoordinatorLoadInProgressError = _error("CoordinatorLoadInProgressError", 14, "COORDINATOR_LOAD_IN_PROGRESS", True)
CoordinatorNotAvailableError = _error("CoordinatorNotAvailableError", 15, "COORDINATOR_NOT_AVAILABLE", True)
NotCoordinatorError = _error("NotCoordinatorError", 16, "NOT_COORDINATOR", True)
InvalidTopicError = _error("InvalidTopicError", 17, "INVALID_TOPIC_EXCEPTION")
RecordListTooLargeError = _error("RecordListTooLargeError", 18, "RECORD_LIST_TOO_LARGE")
NotEnoughReplicasError = _error("NotEnoughReplicasError", 19, "NOT_ENOUGH_REPLICAS", True)
NotEnoughReplicasAfterAppendError = _error(
    "NotEnoughReplicasAfterAppendError", 20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", True
)
InvalidRequiredAcksError = _error("InvalidRequiredAcksError", 21, "INVALID_REQUIRED_ACKS")
IllegalGenerationError = _error("IllegalGenerationError", 22, "ILLEGAL_GENERATION")
InconsistentGroupProtocolError = _error("InconsistentGroupProtocolError", 23, "INCONSISTENT_GROUP_PROTOCOL")
InvalidGroupIdError = _error("InvalidGroupIdError", 24, "INVALID_GROUP_ID")
UnknownMemberIdError = _error("UnknownMemberIdError", 25, "UNKNOWN_MEMBER_ID")
InvalidSessionTimeoutError = _error("InvalidSessionTimeoutError", 26, "INVALID_SESSION_TIMEOUT")
RebalanceInProgressError = _error("RebalanceInProgressError", 27, "REBALANCE_IN_PROGRESS")
InvalidCommitOffsetSizeError = _error("InvalidCommitOffsetSizeError", 28, "INVALID_COMMIT_OFFSET_SIZE")
InvalidTimestampError = _error("InvalidTimestampError", 32, "INVALID_TIMESTAMP")
UnsupportedSaslMechanismError = _error("UnsupportedSaslMechanismError", 33, "UNSUPPORTED_SASL_MECHANISM")
IllegalSaslStateError = _error("IllegalSaslStateError", 34, "ILLEGAL_SASL_STATE")
TopicAlreadyExistsError = _error("TopicAlreadyExistsError", 36, "TOPIC_ALREADY_EXISTS")
InvalidPartitionsError = _error("InvalidPartitionsError", 37, "INVALID_PARTITIONS")
InvalidReplicationFactorError = _error("InvalidReplicationFactorError", 38, "INVALID_REPLICATION_FACTOR")
InvalidConfigError = _error("InvalidConfigError", 40, "INVALID_CONFIG")
InvalidRequestError = _error("InvalidRequestError", 42, "INVALID_REQUEST")
PolicyViolationError = _error("PolicyViolationError", 44, "POLICY_VIOLATION")
OutOfOrderSequenceNumberError = _error("OutOfOrderSequenceNumberError", 45, "OUT_OF_ORDER_SEQUENCE_NUMBER")
DuplicateSequenceNumberError = _error("DuplicateSequenceNumberError", 46, "DUPLICATE_SEQUENCE_NUMBER")
InvalidProducerEpochError = _error("InvalidProducerEpochError", 47, "INVALID_PRODUCER_EPOCH")
InvalidTxnStateError = _error("InvalidTxnStateError", 48, "INVALID_TXN_STATE")
InvalidProducerIdMappingError = _error("InvalidProducerIdMappingError", 49, "INVALID_PRODUCER_ID_MAPPING")
InvalidTransactionTimeoutError = _error("InvalidTransactionTimeoutError", 50, "INVALID_TRANSACTION_TIMEOUT")
ConcurrentTransactionsError = _error("ConcurrentTransactionsError", 51, "CONCURRENT_TRANSACTIONS", True)
TransactionCoordinatorFencedError = _error(
    "TransactionCoordinatorFencedError", 52, "TRANSACTION_COORDINATOR_FENCED"
)
KafkaStorageError = _error("KafkaStorageError", 56, "KAFKA_STORAGE_ERROR", True)
SaslAuthenticationFailedError = _error("SaslAuthenticationFailedError", 58, "SASL_AUTHENTICATION_FAILED")
UnknownProducerIdError = _error("UnknownProducerIdError", 59, "UNKNOWN_PRODUCER_ID")
NonEmptyGroupError = _error("NonEmptyGroupError", 68, "NON_EMPTY_GROUP")
GroupIdNotFoundError = _error("GroupIdNotFoundError", 69, "GROUP_ID_NOT_FOUND")
OffsetNotAvailableError = _error("OffsetNotAvailableError", 78, "OFFSET_NOT_AVAILABLE", True)
MemberIdRequiredError = _error("MemberIdRequiredError", 79, "MEMBER_ID_REQUIRED")
GroupMaxSizeReachedError = _error("GroupMaxSizeReachedError", 81, "GROUP_MAX_SIZE_REACHED")
FencedInstanceIdError = _error("FencedInstanceIdError", 82, "FENCED_INSTANCE_ID")
GroupSubscribedToTopicError = _error("GroupSubscribedToTopicError", 86, "GROUP_SUBSCRIBED_TO_TOPIC")
InvalidRecordError = _error("InvalidRecordError", 87, "INVALID_RECORD")
UnstableOffsetCommitError = _error("UnstableOffsetCommitError", 88, "UNSTABLE_OFFSET_COMMIT", True)
ProducerFencedError = _error("ProducerFencedError", 90, "PRODUCER_FENCED")
TransactionalIdNotFoundError = _error("TransactionalIdNotFoundError", 105, "TRANSACTIONAL_ID_NOT_FOUND")
TransactionAbortableError = _error("TransactionAbortableError", 120, "TRANSACTION_ABORTABLE")


class KafkaTimeoutError(KafkaError):
    """A client-side timeout (Kafka's ``TimeoutException``): buffer memory not freed within
    ``max.block.ms``, or a batch not delivered within ``delivery.timeout.ms``."""

    code = 7
    name = "REQUEST_TIMED_OUT"
    retriable = True


def error_for_code(code: int) -> type[KafkaError]:
    """The exception class for a Kafka error code (UNKNOWN_SERVER_ERROR when unknown)."""
    return _BY_CODE.get(code, UnknownServerError)
