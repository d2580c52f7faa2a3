"""The wire server: Kafka's framing over asyncio, the broker calls in a thread pool.

Why asyncio plus a pool: one event loop holds every connection (an idle client costs a
coroutine, not a thread), while the broker's calls block (LMDB, file reads, the fetch long
poll that sleeps up to ``max_wait_ms``, a JoinGroup waiting on the rebalance). Each request
runs in the pool, so a consumer's long poll never holds up a producer on another connection.
Within one connection requests are answered one at a time and in order, as Kafka does (it
mutes a connection while its request is being handled).

Security, as Kafka's listeners have it: TLS (``ssl``, server side) wraps the socket when a
certificate is given, and with a users file every connection must pass SASL/PLAIN
(``sasl.py``) before anything but ApiVersions and the SASL requests is served: PLAINTEXT,
SSL, SASL_PLAINTEXT or SASL_SSL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor

from kcli.common.errors import KafkaError

from . import codec, handlers, sasl

log = logging.getLogger("kcli.server")

POOL_THREADS = 64
STOP_GRACE_S = 35.0  # in-flight requests get this long to be answered when the server stops
LINGER_S = 0.5  # after a refusal that closes the connection, wait this long for the client to hang up


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
                 max_request_bytes: int = codec.SOCKET_REQUEST_MAX_BYTES, *,
                 sasl_users: dict[str, str] | None = None, ssl_context: ssl.SSLContext | None = None,
                 node_id: int | None = None) -> None:
        self.broker = broker
        self.node_id = node_id  # the broker of a cluster this listener serves as
        self.sasl_users = sasl_users
        self.ssl_context = ssl_context
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
                               stopping=lambda: self._stopping, node_id=self.node_id)
        auth = sasl.Authenticator(self.sasl_users) if self.sasl_users is not None else None
        served = 0
        reason = "closed by the client"
        failure = False
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
                if auth is not None and not auth.complete and size > sasl.SASL_SERVER_MAX_RECEIVE_SIZE:
                    reason = (f"request of {size} bytes before authentication refused "
                              f"(sasl.server.max.receive.size is {sasl.SASL_SERVER_MAX_RECEIVE_SIZE})")
                    break
                try:
                    frame = await reader.readexactly(size)
                except asyncio.IncompleteReadError:
                    reason = f"truncated request (the frame announced {size} bytes)"
                    break
                state["busy"] = True
                try:
                    out = await loop.run_in_executor(self.pool, self._handle, ctx, frame, auth)
                finally:
                    state["busy"] = False
                if isinstance(out, str):  # a reason to close
                    reason = out
                    break
                if isinstance(out, sasl.Close):  # maybe an answer, then close
                    reason, failure = out.reason, out.failure
                    if out.answer:
                        if out.delay_s:
                            await asyncio.sleep(out.delay_s)
                        writer.write(out.answer)
                        await writer.drain()
                        await self._linger(reader)
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
            user = f" user={auth.user}" if auth is not None and auth.user else ""
            log.log(logging.WARNING if failure else logging.INFO, "connection %s client_id=%s%s: %d requests, %s",
                    peer_text, ctx.client_id or "-", user, served, reason)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass

    async def _linger(self, reader: asyncio.StreamReader) -> None:
        """Give the client a moment to read a refusal and hang up itself, reading (and ignoring)
        whatever it still sends: some clients drop the last answer when it arrives together
        with the end of the stream."""
        try:
            async with asyncio.timeout(LINGER_S):
                while await reader.read(1 << 16):
                    pass
        except (TimeoutError, ConnectionError, OSError):
            pass

    def _handle(self, ctx: handlers.Context, frame: bytes, auth: sasl.Authenticator | None = None):
        """The framed response bytes, b"" for no response, a str: why to close, or a
        ``sasl.Close`` (an answer, then close)."""
        if auth is not None and not auth.complete:
            out = auth.handle(frame)
            if out is not sasl.PASS:
                return out
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
                                                  reuse_address=True, limit=1 << 16, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        host, port = self.advertised or (self.listen[0], self.port)
        protocol = ("SASL_" if self.sasl_users is not None else "") + ("SSL" if self.ssl_context else "PLAINTEXT")
        log.info("kcli serve: listening on %s:%d (advertised %s:%d, %s)", self.listen[0], self.port, host, port,
                 protocol)

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


CLUSTER_WATCH_S = 0.1


async def serve_cluster(broker, listen: tuple[str, int], advertised: tuple[str, int] | None, **kwargs) -> None:
    """A cluster directory: one listener per running broker, broker k on the base port + k
    (advertised likewise), opened when the broker starts and closed when it stops, so that
    clients see a broker go away and find the new leaders in Metadata."""
    view = broker.cluster
    servers: dict[int, Server] = {}
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("kcli serve: cluster of brokers %s, broker k on port %d + k", view.brokers, listen[1])
    try:
        while not stop.is_set():
            for b in view.brokers:
                running = view.alive(b)
                if running and b not in servers:
                    adv = (advertised[0], advertised[1] + b) if advertised else None
                    server = Server(broker, (listen[0], listen[1] + b), adv, node_id=b, **kwargs)
                    await server.start()
                    servers[b] = server
                elif not running and b in servers:
                    log.info("kcli serve: broker %d stopped, closing its listener", b)
                    await servers.pop(b).stop()
            try:
                await asyncio.wait_for(stop.wait(), CLUSTER_WATCH_S)
            except asyncio.TimeoutError:
                pass
    finally:
        for server in servers.values():
            await server.stop()


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """The server side of TLS from a PEM certificate (chain) and its unencrypted private key."""

    def no_passphrase():
        raise ServeError(f"--tls-key {key_file} is encrypted: give the private key unencrypted")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file, password=no_passphrase)
    except FileNotFoundError as exc:
        raise ServeError(f"--tls-cert/--tls-key: {exc.filename}: no such file") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise ServeError(f"--tls-cert {cert_file} / --tls-key {key_file}: not a PEM certificate and its "
                         f"private key ({why})") from None
    return context


def serve(data_dir: str, listen: str = "127.0.0.1:9092", advertised_listener: str | None = None,
          allow_anonymous: bool = False, *, sasl_users: str | None = None, tls_cert: str | None = None,
          tls_key: str | None = None) -> None:
    """Run ``kcli serve`` in the foreground until SIGTERM or SIGINT.

    ``sasl_users`` names a file of ``user:password`` lines: every connection must then pass
    SASL/PLAIN. ``tls_cert`` and ``tls_key`` (PEM) put TLS on the listener.
    """
    host, port = parse_host_port(listen, "--listen")
    advertised = parse_host_port(advertised_listener, "--advertised-listener") if advertised_listener else None
    if not is_loopback(host) and not allow_anonymous and sasl_users is None:
        raise ServeError(f"--listen {listen} is not a loopback address: refusing to serve it without "
                         f"authentication (pass --sasl-users FILE, or --allow-anonymous to serve it anyway)")
    if (tls_cert is None) != (tls_key is None):
        raise ServeError("--tls-cert and --tls-key go together")
    users = None
    if sasl_users is not None:
        try:
            users = sasl.load_users(sasl_users)
        except sasl.UsersFileError as exc:
            raise ServeError(str(exc)) from None
    context = server_ssl_context(tls_cert, tls_key) if tls_cert is not None else None
    if advertised is None and host in ("0.0.0.0", "::", ""):
        advertised = (socket.gethostname(), port)
    from kcli.broker import open_broker

    broker = open_broker(data_dir, create=True)
    try:
        if advertised is not None and advertised[1] == 0:
            raise ServeError("--advertised-listener needs a port")
        if broker.cluster is not None:
            if port == 0:
                raise ServeError("a cluster needs a fixed --listen port: broker k listens on it + k")
            asyncio.run(serve_cluster(broker, (host, port), advertised, sasl_users=users, ssl_context=context))
            return
        server = Server(broker, (host, port), advertised, sasl_users=users, ssl_context=context)
        asyncio.run(server.run_until_signalled())
    finally:
        broker.close()
