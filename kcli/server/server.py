"""The wire server: Kafka's framing over asyncio, the broker calls in a thread pool.

Why asyncio plus a pool: one event loop holds every connection (an idle client costs a
coroutine, not a thread), while the broker's calls block (LMDB, file reads, the fetch long
poll that sleeps up to ``max_wait_ms``, a JoinGroup waiting on the rebalance). Each request
runs in the pool, so a consumer's long poll never holds up a producer on another connection.
Within one connection requests are answered one at a time and in order, as Kafka does (it
mutes a connection while its request is being handled).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

from kcli.common.errors import KafkaError

from . import codec, handlers

log = logging.getLogger("kcli.server")

POOL_THREADS = 64
STOP_GRACE_S = 35.0  # in-flight requests get this long to be answered when the server stops


class ServeError(Exception):
    """The server cannot start (one line for the user)."""


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def parse_host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"{what} must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


class Server:
    def __init__(self, broker, listen: tuple[str, int], advertised: tuple[str, int] | None = None,
                 max_request_bytes: int = codec.SOCKET_REQUEST_MAX_BYTES) -> None:
        self.broker = broker
        self.listen = listen
        self.advertised = advertised
        self.max_request_bytes = max_request_bytes
        self.pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="kcli-serve")
        self._stopping = False
        self._server: asyncio.base_events.Server | None = None
        self._connections: dict[asyncio.Task, dict] = {}
        self.port = listen[1]

    # -- one connection -------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if peer else "?"
        state = {"busy": False, "writer": writer}
        task = asyncio.current_task()
        self._connections[task] = state
        host, port = self.advertised or (self.listen[0], self.port)
        ctx = handlers.Context(self.broker, host, port, client_host=peer[0] if peer else "",
                               stopping=lambda: self._stopping)
        served = 0
        reason = "closed by the client"
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                try:
                    size_bytes = await reader.readexactly(4)
                except asyncio.IncompleteReadError as exc:
                    reason = "closed by the client" if not exc.partial else "truncated frame size"
                    break
                (size,) = codec.INT32.unpack(size_bytes)
                if size < 0 or size > self.max_request_bytes:
                    reason = (f"request of {size} bytes refused (socket.request.max.bytes is "
                              f"{self.max_request_bytes})")
                    break
                try:
                    frame = await reader.readexactly(size)
                except asyncio.IncompleteReadError:
                    reason = f"truncated request (the frame announced {size} bytes)"
                    break
                state["busy"] = True
                try:
                    out = await loop.run_in_executor(self.pool, self._handle, ctx, frame)
                finally:
                    state["busy"] = False
                if isinstance(out, str):  # a reason to close
                    reason = out
                    break
                served += 1
                if out:
                    writer.write(out)
                    await writer.drain()
            else:
                reason = "server stopping"
        except (ConnectionError, OSError) as exc:
            reason = f"connection error: {exc}"
        except asyncio.CancelledError:
            reason = "server stopping"
        finally:
            self._connections.pop(task, None)
            log.info("connection %s client_id=%s: %d requests, %s", peer_text, ctx.client_id or "-", served, reason)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass

    def _handle(self, ctx: handlers.Context, frame: bytes):
        """The framed response bytes, b"" for no response, or a str: why to close."""
        try:
            api_key, version, correlation_id = codec.peek_key_version(frame)
        except codec.FrameError as exc:
            return str(exc)
        supported = handlers.SUPPORTED.get(api_key)
        if api_key == 18 and supported and not supported[0] <= version <= supported[1]:
            # Kafka answers an ApiVersions it cannot parse with a v0 body: UNSUPPORTED_VERSION
            # and the versions it has, so the client can retry with one of them.
            log.info("ApiVersions v%d is not supported: answering v0 UNSUPPORTED_VERSION", version)
            body = handlers.api_versions_body()
            body["error_code"] = 35
            return codec.encode_response(18, 0, correlation_id, body)
        if supported is None or not supported[0] <= version <= supported[1]:
            return f"unsupported request api_key={api_key} version={version}"
        try:
            header, request = codec.decode_request(frame, api_key, version)
        except Exception as exc:  # noqa: BLE001 - a malformed body closes the connection
            return f"malformed request api_key={api_key} v{version}: {type(exc).__name__}: {exc}"
        if header.client_id:
            ctx.client_id = header.client_id
        try:
            body = handlers.HANDLERS[api_key](ctx, version, request)
            if body is None:
                return b""
            return codec.encode_response(api_key, version, correlation_id, body)
        except KafkaError as exc:
            log.warning("request api_key=%d v%d failed: %s", api_key, version, exc)
            return f"request api_key={api_key} v{version} failed: {exc}"
        except Exception as exc:  # noqa: BLE001 - never let one request crash the server
            log.exception("request api_key=%d v%d failed", api_key, version)
            return f"internal error on api_key={api_key} v{version}: {type(exc).__name__}: {exc}"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.listen[0], self.listen[1],
                                                  reuse_address=True, limit=1 << 16)
        self.port = self._server.sockets[0].getsockname()[1]
        host, port = self.advertised or (self.listen[0], self.port)
        log.info("kcli serve: listening on %s:%d (advertised %s:%d)", self.listen[0], self.port, host, port)

    async def stop(self) -> None:
        """Stop accepting; close idle connections; let in-flight requests be answered."""
        if self._stopping:
            return
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task, state in list(self._connections.items()):
            if not state["busy"]:
                task.cancel()
        pending = list(self._connections)
        if pending:
            done, still = await asyncio.wait(pending, timeout=STOP_GRACE_S)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        self.pool.shutdown(wait=True, cancel_futures=True)
        log.info("kcli serve: stopped")

    async def run_until_signalled(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.stop()


def serve(data_dir: str, listen: str = "127.0.0.1:9092", advertised_listener: str | None = None,
          allow_anonymous: bool = False) -> None:
    """Run ``kcli serve`` in the foreground until SIGTERM or SIGINT."""
    host, port = parse_host_port(listen, "--listen")
    advertised = parse_host_port(advertised_listener, "--advertised-listener") if advertised_listener else None
    if not is_loopback(host) and not allow_anonymous:
        raise ServeError(f"--listen {listen} is not a loopback address: refusing to serve it without "
                         f"authentication (pass --allow-anonymous to serve it anyway)")
    if advertised is None and host in ("0.0.0.0", "::", ""):
        advertised = (socket.gethostname(), port)
    from kcli.broker import open_broker

    broker = open_broker(data_dir, create=True)
    try:
        server = Server(broker, (host, port), advertised)
        if advertised is not None and advertised[1] == 0:
            raise ServeError("--advertised-listener needs a port")
        asyncio.run(server.run_until_signalled())
    finally:
        broker.close()
