"""The client-layer entry point of ``kcli serve``: the command line reaches the wire server
through this module (the CLI speaks only to clients), as Producer and Consumer reach the
broker."""

from __future__ import annotations


def serve(data_dir: str, listen: str = "127.0.0.1:9092", advertised_listener: str | None = None,
          allow_anonymous: bool = False, *, sasl_users: str | None = None, tls_cert: str | None = None,
          tls_key: str | None = None) -> None:
    """Serve Kafka's wire protocol over ``data_dir`` until SIGTERM or SIGINT (SASL/PLAIN with
    the ``sasl_users`` file, TLS with ``tls_cert`` and ``tls_key``)."""
    from kcli.server import serve as _serve

    _serve(data_dir, listen, advertised_listener, allow_anonymous, sasl_users=sasl_users, tls_cert=tls_cert,
           tls_key=tls_key)


def serve_error() -> type[Exception]:
    """The exception ``serve`` raises when it cannot start (one line for the user)."""
    from kcli.server import ServeError

    return ServeError
