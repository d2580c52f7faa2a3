"""``kcli serve``: Kafka's wire protocol over the data directory, for any Kafka client."""

from __future__ import annotations

import logging
import sys
from typing import Optional

import typer

from .common import data_dir, fail, handle_errors


@handle_errors
def serve(
    ctx: typer.Context,
    listen: str = typer.Option("127.0.0.1:9092", "--listen", help="HOST:PORT to listen on (loopback unless --sasl-users or --allow-anonymous)."),
    advertised_listener: Optional[str] = typer.Option(None, "--advertised-listener", help="HOST:PORT clients are told to connect to (default: the --listen address)."),
    allow_anonymous: bool = typer.Option(False, "--allow-anonymous", help="Serve a non-loopback --listen address without authentication."),
    sasl_users: Optional[str] = typer.Option(None, "--sasl-users", metavar="FILE", help="Require SASL/PLAIN: one user:password per line (# comments; user_NAME=\"password\" lines too)."),
    tls_cert: Optional[str] = typer.Option(None, "--tls-cert", metavar="FILE", help="Serve TLS with this PEM certificate (chain); needs --tls-key."),
    tls_key: Optional[str] = typer.Option(None, "--tls-key", metavar="FILE", help="The PEM private key of --tls-cert."),
) -> None:
    """Run a Kafka broker on the data directory (foreground; SIGTERM or Ctrl-C stops it).

    Examples: kcli serve; kcli serve --listen 127.0.0.1:19092;
    kcli serve --listen 0.0.0.0:9092 --advertised-listener myhost:9092 --sasl-users users.txt
    --tls-cert cert.pem --tls-key key.pem
    """
    from kcli.serve import serve as run, serve_error

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        run(data_dir(ctx), listen, advertised_listener, allow_anonymous, sasl_users=sasl_users, tls_cert=tls_cert,
            tls_key=tls_key)
    except serve_error() as exc:
        raise fail(str(exc)) from None
