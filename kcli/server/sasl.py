"""SASL/PLAIN for ``kcli serve``: the server side of Kafka's SASL exchange.

A connection on a SASL listener goes through Kafka's ``SaslServerAuthenticator`` states
before any other request is served:

- before the handshake only ApiVersions and SaslHandshake are answered; any other request
  closes the connection without an answer ("unexpected request during SASL handshake");
- SaslHandshake names the mechanism: PLAIN is the one offered; another gets
  UNSUPPORTED_SASL_MECHANISM (with the list) and the connection is closed;
- after a v1 handshake the client's token comes in SaslAuthenticate (v0-v2) and any other
  request closes the connection; after a v0 handshake the next frame is the bare token and
  the answer a bare (empty) token, as Kafka clients before 1.0 expect;
- a frame over ``sasl.server.max.receive.size`` (512 KiB) closes the connection;
- wrong credentials get SASL_AUTHENTICATION_FAILED with PlainSaslServer's message, sent
  after ``connection.failed.authentication.delay.ms`` (Kafka's default 100 ms), and the
  connection is closed.

Once authenticated, SaslHandshake and SaslAuthenticate reach the ordinary handlers, which
answer ILLEGAL_SASL_STATE as Kafka's KafkaApis does (so does a listener without SASL).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from kcli.common.errors import (
    IllegalSaslStateError,
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
)

from . import codec

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS = 17, 36, 18
SUPPORTED: dict[int, tuple[int, int]] = {SASL_HANDSHAKE: (0, 1), SASL_AUTHENTICATE: (0, 2)}
MECHANISMS = ("PLAIN",)
FAILED_AUTHENTICATION_DELAY_S = 0.1  # connection.failed.authentication.delay.ms, Kafka's default
SASL_SERVER_MAX_RECEIVE_SIZE = 524288  # sasl.server.max.receive.size: the largest frame before authentication

INVALID_CREDENTIALS = "Authentication failed: Invalid username or password"
# What Kafka's authenticator answers when PLAIN's token itself is unusable (it never echoes why)
INVALID_TOKEN = "Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN"
AUTHZID_DIFFERS = "Authentication failed: Client requested an authorization id that is different from username"
AFTER_AUTHENTICATION = "SaslAuthenticate request received after successful authentication"


class UsersFileError(ValueError):
    """The --sasl-users file cannot be used (one line, never showing a password)."""


_JAAS_USER = re.compile(r'user_(?P<name>[^\s="]+)\s*=\s*"(?P<password>(?:[^"\\]|\\.)*)"\s*;?')


def parse_users(text: str, source: str = "--sasl-users") -> dict[str, str]:
    """User name -> password from ``user:password`` lines (``#`` starts a comment line), or
    the ``user_NAME="password"`` options of Kafka's PlainLoginModule JAAS entry."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        jaas = _JAAS_USER.fullmatch(line)
        if jaas:
            name, password = jaas["name"], re.sub(r"\\(.)", r"\1", jaas["password"])
        else:
            name, sep, password = line.partition(":")
            if not sep:
                raise UsersFileError(f"{source} line {number}: expected user:password or user_NAME=\"password\"")
        if not name or not password:
            raise UsersFileError(f"{source} line {number}: the user name and the password must not be empty")
        if name in users:
            raise UsersFileError(f"{source} line {number}: user {name!r} is listed twice")
        users[name] = password
    if not users:
        raise UsersFileError(f"{source} names no user")
    return users


def load_users(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsersFileError(f"--sasl-users {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_users(text, f"--sasl-users {path}")


def verify_plain(users: dict[str, str], token: bytes) -> tuple[str | None, str | None]:
    """(user, None) when the PLAIN token (RFC 4616: authzid NUL user NUL password) is good,
    else (the user named or None, the message for the client)."""
    try:
        parts = token.decode("utf-8").split("\0")
    except UnicodeDecodeError:
        return None, INVALID_TOKEN
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return (parts[1] or None) if len(parts) > 1 else None, INVALID_TOKEN
    authzid, user, password = parts
    expected = users.get(user)
    # compare against something of the same kind when the user is unknown, so the time taken
    # does not tell which users exist
    ok = hmac.compare_digest((expected if expected is not None else "\0" + password).encode(), password.encode())
    if not ok or expected is None:
        return user, INVALID_CREDENTIALS
    if authzid and authzid != user:
        return user, AUTHZID_DIFFERS
    return user, None


# -- the handlers for an authenticated connection (or a listener without SASL) -------------


def handshake_refused(ctx, v: int, req) -> dict:
    return {"error_code": IllegalSaslStateError.code, "mechanisms": []}


def authenticate_refused(ctx, v: int, req) -> dict:
    return {"error_code": IllegalSaslStateError.code, "error_message": AFTER_AUTHENTICATION,
            "auth_bytes": b"", "session_lifetime": 0}


# -- one connection's authentication --------------------------------------------------------


@dataclass
class Close:
    """Close the connection, after writing ``answer`` (if any) ``delay_s`` later."""

    reason: str
    answer: bytes = b""
    delay_s: float = 0.0
    failure: bool = False  # an authentication failure: logged as a warning


PASS = object()  # the request is served as usual (ApiVersions before the handshake)

_HANDSHAKE, _AUTHENTICATE, _RAW_TOKEN, _COMPLETE = "handshake", "authenticate", "raw token", "complete"


class Authenticator:
    """The SASL state of one connection; ``handle`` sees every frame until ``complete``."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.state = _HANDSHAKE
        self.user: str | None = None

    @property
    def complete(self) -> bool:
        return self.state == _COMPLETE

    def handle(self, frame: bytes):
        """PASS, the framed answer (bytes), or a ``Close``."""
        if self.state == _RAW_TOKEN:
            return self._raw_token(frame)
        try:
            api_key, version, correlation_id = codec.peek_key_version(frame)
        except codec.FrameError as exc:
            return Close(f"{exc} during SASL authentication")
        if self.state == _HANDSHAKE:
            if api_key == API_VERSIONS:
                return PASS
            if api_key != SASL_HANDSHAKE:
                return Close(f"unexpected request api_key={api_key} v{version} during SASL handshake "
                             f"(only ApiVersions and SaslHandshake are served before authentication)")
            return self._handshake(frame, version, correlation_id)
        if api_key != SASL_AUTHENTICATE:
            return Close(f"unexpected request api_key={api_key} v{version} during SASL authentication "
                         f"({IllegalSaslStateError.name})")
        return self._authenticate(frame, version, correlation_id)

    def _decode(self, frame: bytes, api_key: int, version: int):
        lo, hi = SUPPORTED[api_key]
        if not lo <= version <= hi:
            return None, Close(f"unsupported request api_key={api_key} version={version} during SASL authentication")
        try:
            return codec.decode_request(frame, api_key, version)[1], None
        except Exception as exc:  # noqa: BLE001 - a malformed body closes the connection
            return None, Close(f"malformed request api_key={api_key} v{version}: {type(exc).__name__}: {exc}")

    def _handshake(self, frame: bytes, version: int, correlation_id: int):
        req, close = self._decode(frame, SASL_HANDSHAKE, version)
        if close:
            return close
        if req.mechanism not in MECHANISMS:
            answer = codec.encode_response(SASL_HANDSHAKE, version, correlation_id, {
                "error_code": UnsupportedSaslMechanismError.code, "mechanisms": list(MECHANISMS)})
            return Close(f"{UnsupportedSaslMechanismError.name}: the client asked for SASL mechanism "
                         f"{req.mechanism!r} (enabled: {', '.join(MECHANISMS)})", answer,
                         FAILED_AUTHENTICATION_DELAY_S, failure=True)
        self.state = _AUTHENTICATE if version >= 1 else _RAW_TOKEN
        return codec.encode_response(SASL_HANDSHAKE, version, correlation_id,
                                     {"error_code": None, "mechanisms": list(MECHANISMS)})

    def _failed(self, user: str | None, message: str, answer: bytes = b"") -> Close:
        who = f"user {user!r}" if user else "no user named"
        return Close(f"SASL/PLAIN authentication failed ({who}): {message}", answer,
                     FAILED_AUTHENTICATION_DELAY_S, failure=True)

    def _authenticate(self, frame: bytes, version: int, correlation_id: int):
        req, close = self._decode(frame, SASL_AUTHENTICATE, version)
        if close:
            return close
        user, message = verify_plain(self.users, bytes(req.auth_bytes))
        if message is not None:
            answer = codec.encode_response(SASL_AUTHENTICATE, version, correlation_id, {
                "error_code": SaslAuthenticationFailedError.code, "error_message": message,
                "auth_bytes": b"", "session_lifetime": 0})
            return self._failed(user, message, answer)
        self.state, self.user = _COMPLETE, user
        return codec.encode_response(SASL_AUTHENTICATE, version, correlation_id, {
            "error_code": None, "error_message": None, "auth_bytes": b"", "session_lifetime": 0})

    def _raw_token(self, token: bytes):
        user, message = verify_plain(self.users, token)
        if message is not None:
            return self._failed(user, message)  # no answer: the v0 exchange has no error frame
        self.state, self.user = _COMPLETE, user
        return codec.INT32.pack(0)  # PLAIN's (empty) challenge, size-prefixed
