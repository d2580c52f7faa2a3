"""Fault injection on the client/broker seam: the seed's three failure stories, for real.

A spec such as ``"ack-lost=0.3,seed=7"`` (Python config ``kcli.inject.fault``, or
``kcli produce --inject-fault``) wraps the broker so that each produce request fails with
the given probability, in one of three ways:

- ``ack-lost``: the batch is stored, then the answer is lost on the way back
  (``NETWORK_EXCEPTION``); a retry writes it again: a duplicate.
- ``ack-timeout``: the batch is stored, but the answer comes too late
  (``REQUEST_TIMED_OUT``); a retry writes it again: a duplicate.
- ``fail-before``: the request fails before anything is stored (``NETWORK_EXCEPTION``);
  without retries the records are lost.

Errors raised after the append carry ``stored = True`` so the producer can count the
duplicates it causes by retrying.
"""

from __future__ import annotations

import random

from kcli.common.errors import InvalidConfigError, NetworkError, RequestTimedOutError

KINDS = ("ack-lost", "ack-timeout", "fail-before")


def parse_fault_spec(spec: str) -> tuple[dict[str, float], int | None]:
    rates: dict[str, float] = {}
    seed = None
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            number = float(value) if sep else 1.0
        except ValueError:
            raise InvalidConfigError(f"fault {part!r}: {value!r} is not a number") from None
        if name == "seed":
            seed = int(number)
            continue
        if name not in KINDS:
            raise InvalidConfigError(f"unknown fault {name!r}; choose from {', '.join(KINDS)} (and seed=N)")
        if not 0.0 <= number <= 1.0:
            raise InvalidConfigError(f"fault {name}: probability {number} is not between 0 and 1")
        rates[name] = number
    return rates, seed


class FaultInjectingBroker:
    """Wraps a broker; forwards everything, and makes ``produce`` fail as the spec says."""

    def __init__(self, broker, rates: dict[str, float], seed: int | None = None) -> None:
        self._broker = broker
        self._rates = rates
        self._rng = random.Random(seed)
        self.injected = {kind: 0 for kind in KINDS}

    def __getattr__(self, name):
        return getattr(self._broker, name)

    def _pick(self) -> str | None:
        roll = self._rng.random()
        for kind in KINDS:
            rate = self._rates.get(kind, 0.0)
            if roll < rate:
                return kind
            roll -= rate
        return None

    def produce(self, request):
        """Produce, failing as the spec says: a whole request is lost, as on a network."""
        names = ", ".join(f"{p.topic}-{p.partition}" for p in request.partitions)
        fault = self._pick()
        if fault == "fail-before":
            self.injected[fault] += 1
            raise NetworkError(f"injected fault: the produce request to {names} failed before storing")
        response = self._broker.produce(request)
        if fault is not None:
            self.injected[fault] += 1
            stored = [r for r in response.partitions if r.error is None]
            error = (NetworkError if fault == "ack-lost" else RequestTimedOutError)(
                f"injected fault ({fault}): {names} stored offsets "
                + ", ".join(f"{r.base_offset}..{r.last_offset}" for r in stored) + " but the answer was lost"
            )
            # a recognised retry stored nothing
            error.stored = any(not r.duplicate for r in stored)
            raise error
        return response

def wrap_with_faults(broker, spec):
    if not spec:
        return broker
    rates, seed = parse_fault_spec(spec) if isinstance(spec, str) else (dict(spec), None)
    return FaultInjectingBroker(broker, rates, seed)
