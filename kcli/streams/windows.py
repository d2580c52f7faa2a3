"""Window specifications and windowed keys (Kafka's ``TimeWindows``, ``SlidingWindows``,
``SessionWindows``, ``JoinWindows``, ``Windowed``) and ``Suppressed``.

Times are milliseconds. A time window is ``[start, end)``; a session window and a sliding
window are ``[start, end]`` (both ends inclusive), as in Kafka. Without an explicit grace the
``..._and_grace`` constructors take the one given; ``of_size_with_no_grace`` is grace 0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["TimeWindows", "SlidingWindows", "SessionWindows", "JoinWindows", "Window", "Windowed",
           "Suppressed", "WindowedSerde", "EmitStrategy"]


class Window(NamedTuple):
    start: int
    end: int


class Windowed(NamedTuple):
    key: Any
    window: Window

    def __str__(self) -> str:  # Kafka's Windowed.toString
        return f"[{self.key}@{self.window.start}/{self.window.end}]"


@dataclass(frozen=True)
class TimeWindows:
    size_ms: int
    advance_ms: int
    grace_ms: int = 0

    @classmethod
    def of_size_with_no_grace(cls, size_ms: int) -> "TimeWindows":
        return cls(int(size_ms), int(size_ms), 0)

    @classmethod
    def of_size_and_grace(cls, size_ms: int, grace_ms: int) -> "TimeWindows":
        return cls(int(size_ms), int(size_ms), int(grace_ms))

    def advance_by(self, advance_ms: int) -> "TimeWindows":
        if not 0 < advance_ms <= self.size_ms:
            raise ValueError("Window advancement interval should be more than zero and less than window duration")
        return TimeWindows(self.size_ms, int(advance_ms), self.grace_ms)

    def windows_for(self, ts: int) -> list[Window]:
        """Every window containing ``ts`` (Kafka's ``TimeWindows.windowsFor``)."""
        start = max(0, ts - self.size_ms + self.advance_ms)
        start -= start % self.advance_ms
        out = []
        while start <= ts:
            out.append(Window(start, start + self.size_ms))
            start += self.advance_ms
        return out

    def retention_ms(self) -> int:
        return self.size_ms + self.grace_ms

    @property
    def tumbling(self) -> bool:
        return self.advance_ms == self.size_ms


@dataclass(frozen=True)
class SlidingWindows:
    time_difference_ms: int
    grace_ms: int = 0

    @classmethod
    def of_size_with_no_grace(cls, time_difference_ms: int) -> "SlidingWindows":
        return cls(int(time_difference_ms), 0)

    @classmethod
    def of_size_and_grace(cls, time_difference_ms: int, grace_ms: int) -> "SlidingWindows":
        return cls(int(time_difference_ms), int(grace_ms))

    @classmethod
    def with_time_difference_and_grace(cls, time_difference_ms: int, grace_ms: int) -> "SlidingWindows":
        return cls(int(time_difference_ms), int(grace_ms))

    def retention_ms(self) -> int:
        return 2 * self.time_difference_ms + self.grace_ms + 1


@dataclass(frozen=True)
class SessionWindows:
    inactivity_gap_ms: int
    grace_ms: int = 0

    @classmethod
    def of_inactivity_gap_with_no_grace(cls, gap_ms: int) -> "SessionWindows":
        return cls(int(gap_ms), 0)

    @classmethod
    def of_inactivity_gap_and_grace(cls, gap_ms: int, grace_ms: int) -> "SessionWindows":
        return cls(int(gap_ms), int(grace_ms))

    def retention_ms(self) -> int:
        return self.inactivity_gap_ms + self.grace_ms


@dataclass(frozen=True)
class JoinWindows:
    before_ms: int
    after_ms: int
    grace_ms: int = 0

    @classmethod
    def of_time_difference_with_no_grace(cls, diff_ms: int) -> "JoinWindows":
        return cls(int(diff_ms), int(diff_ms), 0)

    @classmethod
    def of_time_difference_and_grace(cls, diff_ms: int, grace_ms: int) -> "JoinWindows":
        return cls(int(diff_ms), int(diff_ms), int(grace_ms))

    def before(self, ms: int) -> "JoinWindows":
        return JoinWindows(int(ms), self.after_ms, self.grace_ms)

    def after(self, ms: int) -> "JoinWindows":
        return JoinWindows(self.before_ms, int(ms), self.grace_ms)

    def size_ms(self) -> int:
        return self.before_ms + self.after_ms

    def retention_ms(self) -> int:
        return self.before_ms + self.after_ms + self.grace_ms


@dataclass(frozen=True)
class Suppressed:
    """``Suppressed.until_window_closes(unbounded())``: one final result per window, when
    stream time passes the window's end plus its grace."""

    kind: str
    time_to_wait_ms: int = 0
    name: str | None = None

    @classmethod
    def until_window_closes(cls, buffer_config: Any = None) -> "Suppressed":
        return cls("until_window_closes")

    @classmethod
    def until_time_limit(cls, time_to_wait_ms: int, buffer_config: Any = None) -> "Suppressed":
        return cls("until_time_limit", int(time_to_wait_ms))

    def with_name(self, name: str) -> "Suppressed":
        return Suppressed(self.kind, self.time_to_wait_ms, name)

    class BufferConfig:
        @staticmethod
        def unbounded():
            return None


@dataclass(frozen=True)
class EmitStrategy:
    """When a windowed aggregation forwards its results (KIP-825, Kafka's EmitStrategy):
    ``on_window_update()`` (the default) every update; ``on_window_close()`` each window once,
    when stream time passes its end plus grace, straight from the window store (no
    suppression buffer)."""

    type: str

    ON_WINDOW_UPDATE = "ON_WINDOW_UPDATE"
    ON_WINDOW_CLOSE = "ON_WINDOW_CLOSE"

    @classmethod
    def on_window_update(cls) -> "EmitStrategy":
        return cls(cls.ON_WINDOW_UPDATE)

    @classmethod
    def on_window_close(cls) -> "EmitStrategy":
        return cls(cls.ON_WINDOW_CLOSE)


_Q = struct.Struct(">q")


class WindowedSerde:
    """Kafka's time-windowed key format: the inner key's bytes then the window start
    (8 bytes, big-endian); session windows add the end first (key, end, start)."""

    def __init__(self, inner, window_size_ms: int | None = None, session: bool = False) -> None:
        self.inner = inner
        self.size = window_size_ms
        self.session = session

    def bind(self, default_key_serde) -> "WindowedSerde":
        """This format over ``default.key.serde`` when it was made without an inner serde."""
        if self.inner is not None:
            return self
        return WindowedSerde(default_key_serde, self.size, self.session)

    def serialize(self, w):
        if w is None:
            return None
        k = self.inner.serialize(w.key) or b""
        if self.session:
            return k + _Q.pack(w.window.end) + _Q.pack(w.window.start)
        return k + _Q.pack(w.window.start)

    def deserialize(self, data):
        if data is None:
            return None
        if self.session:
            end, start = _Q.unpack(data[-16:-8])[0], _Q.unpack(data[-8:])[0]
            return Windowed(self.inner.deserialize(data[:-16]), Window(start, end))
        start = _Q.unpack(data[-8:])[0]
        end = start + self.size if self.size is not None else 2**63 - 1
        return Windowed(self.inner.deserialize(data[:-8]), Window(start, end))
