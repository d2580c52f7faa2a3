"""``kcli serve`` with SASL/PLAIN (``--sasl-users``) and TLS (``--tls-cert``/``--tls-key``):
real clients (confluent-kafka, kafka-python) with SASL_PLAINTEXT, SSL and SASL_SSL, Kafka's
SASL exchange by hand on a raw socket, and the start-up checks.

Each server is ``python -m kcli serve`` as a subprocess on 127.0.0.1, stopped with SIGTERM
(it must exit 0). Certificates are made with the ``openssl`` command.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time

import confluent_kafka
import kafka
import pytest

from support import ServeProcess, free_port, read_exactly, read_response, wire_request

from kcli.server import ServeError, sasl, serve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USERS = "# who may connect\nalice:secret\n\nuser_bob=\"pass:word\";\n"


def kcli(data_dir, *args, input=None, check=True):
    r = subprocess.run([sys.executable, "-m", "kcli", "-d", str(data_dir), *args], cwd=ROOT, input=input,
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def consume_json(data_dir, topic, partition=0):
    out = kcli(data_dir, "consume", topic, "-p", str(partition), "--from-beginning", "-O", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Served:
    def __init__(self, data_dir, port, log_path, cert=None):
        self.data_dir, self.port, self.log_path, self.cert = data_dir, port, log_path, cert
        self.bootstrap = f"127.0.0.1:{port}"

    def log(self) -> str:
        return self.log_path.read_text()


@contextlib.contextmanager
def serving(base, *serve_args, topics=("t",), listen=None, cert=None):
    data = base / "data"
    from kcli.admin import Admin

    admin = Admin(str(data), create=True)  # in process: quicker than one kcli command per topic
    try:
        for t in topics:
            admin.create_topic(t)
    finally:
        admin.close()
    with ServeProcess(data, base / "serve.log", *serve_args, listen=listen) as server:
        yield Served(data, server.port, base / "serve.log", cert)


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("users") / "users.txt"
    path.write_text(USERS)
    return str(path)


@pytest.fixture(scope="module")
def sasl_served(tmp_path_factory, users_file):
    with serving(tmp_path_factory.mktemp("sasl"), "--sasl-users", users_file,
                 topics=("t", "kp", "nothing", "raw", "bob")) as s:
        yield s


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    assert shutil.which("openssl"), "the openssl command is needed to make a test certificate"
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def sasl_conf(served, user="alice", password="secret", protocol="SASL_PLAINTEXT", **extra):
    conf = {"bootstrap.servers": served.bootstrap, "security.protocol": protocol, "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": password}
    if served.cert is not None:
        conf["ssl.ca.location"] = str(served.cert)
    conf.update(extra)
    return conf


def produce_and_consume(conf, topic, values):
    p = confluent_kafka.Producer(conf)
    errors = []
    for v in values:
        p.produce(topic, value=v, partition=0, on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(20) == 0 and errors == []
    c = confluent_kafka.Consumer({**conf, "group.id": "g-" + topic, "enable.auto.commit": False})
    c.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    got, deadline = [], time.monotonic() + 20
    while len(got) < len(values) and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None:
            assert not m.error(), m.error()
            got.append(m.value())
    c.close()
    return got


# -- real clients -----------------------------------------------------------------------------


def test_confluent_kafka_sasl_plaintext_produces_and_consumes(sasl_served):
    assert produce_and_consume(sasl_conf(sasl_served), "t", [b"a", b"b", b"c"]) == [b"a", b"b", b"c"]
    # the JAAS-style line of the users file: a password with a colon in it
    assert produce_and_consume(sasl_conf(sasl_served, "bob", "pass:word"), "bob", [b"d"]) == [b"d"]
    assert "user=alice" in sasl_served.log() and "user=bob" in sasl_served.log()


def test_confluent_kafka_wrong_password_is_sasl_authentication_failed_and_writes_nothing(sasl_served):
    errors = []
    p = confluent_kafka.Producer(sasl_conf(sasl_served, password="wrong", **{
        "message.timeout.ms": 1000, "error_cb": errors.append}))
    delivered = []
    p.produce("nothing", value=b"must not land", on_delivery=lambda err, msg: delivered.append(err))
    p.flush(10)
    assert delivered and delivered[0] is not None  # never acknowledged
    auth = [e for e in errors if e.code() == confluent_kafka.KafkaError._AUTHENTICATION]
    assert auth, errors
    assert "Authentication failed: Invalid username or password" in auth[0].str()
    assert consume_json(sasl_served.data_dir, "nothing") == []
    failures = [line for line in sasl_served.log().splitlines() if "authentication failed (user 'alice')" in line]
    assert failures and all("WARNING" in line for line in failures)
    assert "wrong" not in "\n".join(failures)  # the password is never logged


def test_kafka_python_sasl_plaintext_produces_and_consumes_and_refuses_a_wrong_password(sasl_served, caplog):
    conf = dict(bootstrap_servers=sasl_served.bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="PLAIN", sasl_plain_username="alice", sasl_plain_password="secret")
    p = kafka.KafkaProducer(acks="all", **conf)
    for i in range(3):
        p.send("kp", value=b"v%d" % i, partition=0).get(timeout=20)
    p.close()
    c = kafka.KafkaConsumer(auto_offset_reset="earliest", **conf)
    c.assign([kafka.TopicPartition("kp", 0)])
    got, deadline = [], time.monotonic() + 20
    while len(got) < 3 and time.monotonic() < deadline:
        got += [m.value for batch in c.poll(timeout_ms=200).values() for m in batch]
    c.close()
    assert got == [b"v0", b"v1", b"v2"]
    # kafka-python retries the bootstrap until its timeout, logging why each attempt failed
    with caplog.at_level("WARNING", logger="kafka"), pytest.raises(kafka.errors.KafkaTimeoutError):
        kafka.KafkaProducer(**{**conf, "sasl_plain_password": "wrong"}, bootstrap_timeout_ms=1500)
    assert "SaslAuthenticationFailedError: Authentication failed: Invalid username or password" in caplog.text


# -- the exchange by hand ------------------------------------------------------------------------


def _closed(sock) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


def _handshake(mechanism="PLAIN", version=1):
    from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

    return wire_request(17, version, SaslHandshakeRequest(mechanism=mechanism), 2)


def _authenticate(user, password, version=2):
    from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest

    return wire_request(36, version, SaslAuthenticateRequest(auth_bytes=b"\0%s\0%s" % (user, password)), 3)


def _metadata(correlation_id=9):
    from kio.schema.metadata.v1.request import MetadataRequest

    return wire_request(3, 1, MetadataRequest(topics=None), correlation_id)


def _api_versions():
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    return wire_request(18, 3, ApiVersionsRequest(client_software_name="test", client_software_version="1"), 1)


def test_wrong_password_by_hand_answers_58_then_closes_and_serves_nothing(sasl_served):
    with socket.create_connection(("127.0.0.1", sasl_served.port), timeout=10) as s:
        s.sendall(_api_versions())
        versions = read_response(s, 18, 3)
        keys = {k.api_key: (k.min_version, k.max_version) for k in versions.api_keys}
        assert keys[17] == (0, 1) and keys[36] == (0, 2)
        s.sendall(_handshake())
        handshake = read_response(s, 17, 1)
        assert (handshake.error_code.value, handshake.mechanisms) == (0, ("PLAIN",))
        s.sendall(_authenticate(b"alice", b"guess"))
        answer = read_response(s, 36, 2)
        assert answer.error_code.value == 58  # SASL_AUTHENTICATION_FAILED
        assert answer.error_message == "Authentication failed: Invalid username or password"
        try:
            s.sendall(_metadata())
        except ConnectionError:
            pass
        assert _closed(s)


def test_a_request_before_authentication_closes_the_connection_unanswered(sasl_served):
    with socket.create_connection(("127.0.0.1", sasl_served.port), timeout=10) as s:
        s.sendall(_metadata())
        assert _closed(s)
    with socket.create_connection(("127.0.0.1", sasl_served.port), timeout=10) as s:
        # after the handshake, only SaslAuthenticate
        s.sendall(_handshake())
        assert read_response(s, 17, 1).error_code.value == 0
        s.sendall(_metadata())
        assert _closed(s)
    with socket.create_connection(("127.0.0.1", sasl_served.port), timeout=10) as s:
        s.sendall(struct.pack(">i", 524289))  # over sasl.server.max.receive.size
        assert _closed(s)
    text = sasl_served.log()
    assert "during SASL handshake" in text and "during SASL authentication" in text
    assert "sasl.server.max.receive.size" in text


def test_an_unsupported_mechanism_is_answered_33_with_the_list_then_closed(sasl_served):
    with socket.create_connection(("127.0.0.1", sasl_served.port), timeout=10) as s:
        s.sendall(_handshake("SCRAM-SHA-256"))
        answer = read_response(s, 17, 1)
        assert (answer.error_code.value, answer.mechanisms) == (33, ("PLAIN",))  # UNSUPPORTED_SASL_MECHANISM
        assert _closed(s)


def test_after_authentication_requests_are_served_and_sasl_again_is_illegal_sasl_state(sasl_served):
    with socket.create_connection(("127.0.0.1", sasl_served.port), timeout=10) as s:
        s.sendall(_handshake() + _authenticate(b"alice", b"secret"))
        assert read_response(s, 17, 1).error_code.value == 0
        ok = read_response(s, 36, 2)
        assert (ok.error_code.value, ok.error_message) == (0, None)
        s.sendall(_metadata())
        assert "raw" in {t.name for t in read_response(s, 3, 1).topics}
        s.sendall(_authenticate(b"alice", b"secret"))
        again = read_response(s, 36, 2)
        assert again.error_code.value == 34  # ILLEGAL_SASL_STATE, and the connection stays up
        assert again.error_message == "SaslAuthenticate request received after successful authentication"
        s.sendall(_metadata())
        assert read_response(s, 3, 1).brokers


def test_a_v0_handshake_takes_the_bare_token(sasl_served):
    def token(user, password):
        raw = b"\0%s\0%s" % (user, password)
        return struct.pack(">i", len(raw)) + raw

    with socket.create_connection(("127.0.0.1", sasl_served.port), timeout=10) as s:
        s.sendall(_handshake(version=0))
        assert read_response(s, 17, 0).mechanisms == ("PLAIN",)
        s.sendall(token(b"bob", b"pass:word"))
        assert read_exactly(s, 4) == b"\0\0\0\0"  # an empty challenge: done
        s.sendall(_metadata())
        assert read_response(s, 3, 1).brokers
    with socket.create_connection(("127.0.0.1", sasl_served.port), timeout=10) as s:
        s.sendall(_handshake(version=0))
        read_response(s, 17, 0)
        s.sendall(token(b"bob", b"nope"))
        assert _closed(s)


# -- TLS ------------------------------------------------------------------------------------------


def test_confluent_kafka_sasl_ssl_on_a_non_loopback_listen_produces_and_consumes(tmp_path, cert, users_file):
    # --sasl-users is what a non-loopback --listen needs (TLS or not); clients come in by 127.0.0.1
    port = free_port()
    with serving(tmp_path, "--sasl-users", users_file, "--tls-cert", str(cert[0]), "--tls-key", str(cert[1]),
                 "--advertised-listener", f"127.0.0.1:{port}", listen=f"0.0.0.0:{port}", cert=cert[0]) as served:
        assert "listening on 0.0.0.0" in served.log() and "SASL_SSL" in served.log()
        conf = sasl_conf(served, protocol="SASL_SSL")
        assert produce_and_consume(conf, "t", [b"over", b"tls"]) == [b"over", b"tls"]
        context = ssl.create_default_context(cafile=str(cert[0]))
        with context.wrap_socket(socket.create_connection(("127.0.0.1", served.port), timeout=10),
                                 server_hostname="127.0.0.1") as s:
            s.sendall(_metadata())
            assert _closed(s)  # nothing without authentication
        # a client that does not speak TLS gets nothing
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
            s.sendall(_api_versions())
            assert _closed(s)


def test_tls_without_sasl_serves_ssl_and_refuses_a_sasl_handshake(tmp_path, cert):
    with serving(tmp_path, "--tls-cert", str(cert[0]), "--tls-key", str(cert[1])) as served:
        conf = {"bootstrap.servers": served.bootstrap, "security.protocol": "SSL",
                "enable.ssl.certificate.verification": False}
        assert produce_and_consume(conf, "t", [b"x"]) == [b"x"]
        context = ssl.create_default_context(cafile=str(cert[0]))
        with context.wrap_socket(socket.create_connection(("127.0.0.1", served.port), timeout=10),
                                 server_hostname="localhost") as s:
            s.sendall(_handshake())
            assert read_response(s, 17, 1).error_code.value == 34  # ILLEGAL_SASL_STATE: no SASL here
            s.sendall(_metadata())
            assert read_response(s, 3, 1).brokers


# -- start-up -------------------------------------------------------------------------------------


def _one_line_error(r):
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    return r.stderr


def test_a_malformed_users_file_is_a_one_line_error_that_shows_no_password(tmp_path):
    bad = tmp_path / "users.txt"
    bad.write_text("alice:secret\nhunter2-without-a-colon\n")
    err = _one_line_error(kcli(tmp_path / "d", "serve", "--listen", "127.0.0.1:0", "--sasl-users", str(bad),
                               check=False))
    assert "line 2" in err and "hunter2" not in err and "secret" not in err
    with pytest.raises(ServeError, match="missing"):
        serve(str(tmp_path / "d"), "127.0.0.1:0", sasl_users=str(tmp_path / "missing"))


def test_a_bad_certificate_or_key_is_a_one_line_error(tmp_path, cert):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    err = _one_line_error(kcli(tmp_path / "d", "serve", "--listen", "127.0.0.1:0", "--tls-cert", str(junk),
                               "--tls-key", str(cert[1]), check=False))
    assert "--tls-cert" in err
    encrypted = tmp_path / "encrypted.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes128",
                    "-pass", "pass:x", "-out", str(encrypted)], check=True, capture_output=True)
    for cert_file, key_file in ((cert[0], junk), (cert[0], tmp_path / "nokey.pem"), (cert[1], cert[0]),
                                (cert[0], encrypted), (cert[0], None), (None, cert[1])):
        with pytest.raises(ServeError, match="--tls-") as refused:
            serve(str(tmp_path / "d"), "127.0.0.1:0", tls_cert=cert_file and str(cert_file),
                  tls_key=key_file and str(key_file))
        assert "\n" not in str(refused.value)
        if key_file == encrypted:
            assert "encrypted" in str(refused.value)
    assert not (tmp_path / "d").exists()  # refused before the data directory is opened


# -- in process -----------------------------------------------------------------------------------


def test_users_file_lines():
    assert sasl.parse_users(USERS) == {"alice": "secret", "bob": "pass:word"}
    assert sasl.parse_users('  user_carol = "a \\"quoted\\" pw"  \n') == {"carol": 'a "quoted" pw'}
    for text in ("", "# only a comment\n", "alice\n", ":pw\n", "alice:\n", "a:1\na:2\n", 'user_x="unterminated\n'):
        with pytest.raises(sasl.UsersFileError):
            sasl.parse_users(text)


def test_plain_tokens_are_checked_as_kafka_does():
    users = {"alice": "secret", "ünï": "pässwörd"}
    assert sasl.verify_plain(users, b"\0alice\0secret") == ("alice", None)
    assert sasl.verify_plain(users, b"alice\0alice\0secret") == ("alice", None)
    assert sasl.verify_plain(users, "\0ünï\0pässwörd".encode()) == ("ünï", None)
    assert sasl.verify_plain(users, b"\0alice\0Secret") == ("alice", sasl.INVALID_CREDENTIALS)
    assert sasl.verify_plain(users, b"\0mallory\0secret") == ("mallory", sasl.INVALID_CREDENTIALS)
    assert sasl.verify_plain(users, b"bob\0alice\0secret") == ("alice", sasl.AUTHZID_DIFFERS)
    for token in (b"", b"alice", b"\0alice\0", b"\0\0secret", b"\0alice\0sec\0ret", b"\xff\0alice\0secret"):
        assert sasl.verify_plain(users, token)[1] == sasl.INVALID_TOKEN
