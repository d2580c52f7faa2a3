"""librdkafka's errors as kcli's: Kafka's error names and codes (``kcli.common.errors``).

A broker's error code is Kafka's own and maps one to one. librdkafka's local errors
(negative codes) map to what Kafka's Java client raises for the same trouble: a broker that
cannot be reached or does not answer in time is a timeout naming the address, an unknown
topic is UNKNOWN_TOPIC_OR_PARTITION, a feature the broker lacks is UNSUPPORTED_VERSION.
"""

from __future__ import annotations

from kcli.common import errors as E


class UnsupportedVersionError(E.KafkaError):
    """The broker does not support the request (Kafka's UNSUPPORTED_VERSION)."""

    code = 35
    name = "UNSUPPORTED_VERSION"


class NoBrokerError(E.KafkaTimeoutError):
    """No broker answered within the time allowed (Kafka's TimeoutException)."""


def _local_map():
    from confluent_kafka import KafkaError as K

    return {
        K._TIMED_OUT: E.KafkaTimeoutError, K._MSG_TIMED_OUT: E.KafkaTimeoutError,
        K._TRANSPORT: E.NetworkError, K._ALL_BROKERS_DOWN: E.NetworkError, K._RESOLVE: E.NetworkError,
        K._UNKNOWN_TOPIC: E.UnknownTopicOrPartitionError, K._UNKNOWN_PARTITION: E.UnknownTopicOrPartitionError,
        K._UNSUPPORTED_FEATURE: UnsupportedVersionError, K._INVALID_ARG: E.InvalidConfigError,
        K._FENCED: E.ProducerFencedError, K._STATE: E.InvalidTxnStateError,
        K._AUTHENTICATION: E.SaslAuthenticationFailedError, K.MSG_SIZE_TOO_LARGE: E.RecordTooLargeError,
        K._QUEUE_FULL: E.KafkaTimeoutError, K._NOT_IMPLEMENTED: UnsupportedVersionError,
    }


_LOCAL: dict | None = None


_EXTRA: dict[int, type] = {35: UnsupportedVersionError}


def error_class(code: int, name: str | None = None) -> type:
    """kcli's class for a Kafka error code; a code kcli has no class for gets one with the
    name the client reports (e.g. UNSUPPORTED_VERSION), not UNKNOWN_SERVER_ERROR."""
    if code in _EXTRA:
        return _EXTRA[code]
    cls = E.error_for_code(code)
    if cls is E.UnknownServerError and code > 0 and name:
        cls = _EXTRA[code] = type(name.title().replace("_", "") + "Error", (E.KafkaError,),
                                  {"code": code, "name": name.upper()})
    return cls


def from_librdkafka(err, where: str = "") -> E.KafkaError:
    """The kcli exception for a confluent_kafka.KafkaError (or a KafkaException holding one)."""
    global _LOCAL
    if hasattr(err, "args") and err.args and hasattr(err.args[0], "code"):
        err = err.args[0]
    if not hasattr(err, "code"):
        return E.UnknownServerError(f"{where}{err}")
    code = err.code()
    text = err.str() if hasattr(err, "str") else str(err)
    if code >= 0:
        cls = error_class(code, err.name() if hasattr(err, "name") else None)
    else:
        if _LOCAL is None:
            _LOCAL = _local_map()
        cls = _LOCAL.get(code, E.UnknownServerError)
    return cls(f"{where}{text}")


def unreachable(address: str, seconds: float, errors: list | None = None, early: bool = False) -> E.KafkaError:
    """No broker of ``address`` answered within ``seconds`` (or, ``early``, every one refused
    or does not resolve): one line naming the address and librdkafka's reason."""
    reason = ""
    for err in reversed(errors or []):
        text = err.str() if hasattr(err, "str") else str(err)
        if text and "brokers are down" not in text:
            reason = text.split(": ", 1)[-1]
            break
    if any(getattr(e, "code", lambda: 0)() == -169 for e in errors or []):  # _AUTHENTICATION
        return E.SaslAuthenticationFailedError(f"the Kafka broker at {address} refused the credentials: {reason}")
    if early:
        return E.NetworkError(f"cannot reach the Kafka broker at {address}" + (f": {reason}" if reason else ""))
    return NoBrokerError(f"cannot reach the Kafka broker at {address} within {seconds:g} s"
                         + (f" (last error: {reason})" if reason else ""))


def check(future_map: dict, where: str = "") -> dict:
    """Wait for a confluent-kafka admin future map and raise the first error as kcli's."""
    out = {}
    for key, fut in future_map.items():
        try:
            out[key] = fut.result()
        except Exception as exc:  # KafkaException, or a ValueError/TypeError from the client
            if hasattr(exc, "args") and exc.args and hasattr(exc.args[0], "code"):
                raise from_librdkafka(exc, where) from None
            raise
    return out
