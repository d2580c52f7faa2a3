"""Tables on an 80-column terminal: no header or cell folded mid-word, long ids shortened in the
default view and whole with --wide, and piped output (scripts parse it) unchanged: plain
columns, ids whole, one line per row, whatever COLUMNS says.

The terminal tests run the commands in tmux at 80x30 against a live group of three members, an
open transaction and an idempotent producer, and read the pane back."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kcli.cli import tables
from kcli.cli.tables import Col, layout, render, shorten, wrap

HELPERS = Path(__file__).resolve().parent / "helpers"
ROOT = HELPERS.parent.parent
WIDTH = 80

TOPIC = "orders-events-stream"
GROUP = "billing-service"
TXN_ID = "payments-service-transactional-producer-0001"

HEADERS = {
    f"topic describe {TOPIC}": ["Partition", "Leader", "Replicas", "Isr", "LogStartOffset", "LogEndOffset",
                                "Segments", "Bytes", "PartitionCount:", "ReplicationFactor:"],
    f"group describe {GROUP}": ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
                                "CLIENT-ID"],
    f"group describe {GROUP} --members": ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"],
    f"group describe {GROUP} --state": ["GROUP", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
    "transactions list": ["TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState"],
    f"transactions describe {TXN_ID}": ["TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                                        "TransactionTimeoutMs", "TransactionStartTimeMs", "TopicPartitions"],
    f"producers describe {TOPIC}": ["Partition", "ProducerId", "ProducerEpoch", "LastSequence", "LastTimestamp",
                                    "CurrentTransactionStartOffset"],
    f"topic configs {TOPIC} --all": ["sensitive=false", "source=DEFAULT_CONFIG", "default=true"],
    "group list": [GROUP, "Stable"],
}
WIDE = [f"group describe {GROUP} --wide", f"group describe {GROUP} --members --wide", "transactions list --wide",
        f"transactions describe {TXN_ID} --wide"]


# -- the layout, in process -----------------------------------------------------------------


def test_a_table_that_fits_is_left_as_it_is():
    lay = layout(["A", Col("ID", id=True)], [["x", "consumer-1-0123456789abcdef"]], WIDTH)
    assert (lay.kind, lay.gap, lay.cells) == ("table", 2, [["x", "consumer-1-0123456789abcdef"]])


def test_ids_are_shortened_in_the_middle_before_a_table_is_given_up():
    member = "consumer-b15850-4e8aa360-18f3-4616-b21c-d1013e714cff"
    lay = layout(["GROUP", Col("CONSUMER-ID", id=True), "HOST", Col("CLIENT-ID", id=True), "#PARTITIONS"],
                 [[GROUP, member, "localhost", "consumer-b15850", 1]], WIDTH)
    assert lay.kind == "table" and sum(lay.widths) + lay.gap * 4 <= WIDTH
    short = lay.cells[0][1]
    head, tail = short.split("…")
    assert member.startswith(head) and member.endswith(tail) and len(head) > len(tail) > 4
    assert lay.cells[0][3] == "consumer-b15850"  # shortened only as far as needed: the widest id first


def test_wide_never_shortens_and_a_table_too_wide_becomes_header_value_blocks():
    member = "consumer-b15850-4e8aa360-18f3-4616-b21c-d1013e714cff"
    cols = ["GROUP", Col("CONSUMER-ID", id=True), "HOST", Col("CLIENT-ID", id=True), "#PARTITIONS"]
    lines = render(None, cols, [[GROUP, member, "localhost", "consumer-b15850", 1]] * 2, WIDTH, wide=True)
    assert lines[:6] == [("GROUP", "        " + GROUP), ("CONSUMER-ID", "  " + member), ("HOST", "         localhost"),
                         ("CLIENT-ID", "    consumer-b15850"), ("#PARTITIONS", "  1"), ("", "")]
    assert all(len(b + r) <= WIDTH for b, r in lines)


def test_headers_are_never_split_even_when_ids_cannot_shrink_enough():
    cols = [f"HEADER-NUMBER-{i}" for i in range(6)]
    lines = render(None, cols, [["v"] * 6], WIDTH)
    assert [b for b, _ in lines] == cols  # one block: every header whole on its own line


def test_shorten_keeps_the_start_and_the_end():
    assert shorten("abcdefghijklmnopqrstuvwxyz", 11) == "abcdef…wxyz"
    assert shorten("abcdefghijklmnopqrstuvwxyz", 11, "...") == "abcde...xyz"
    assert shorten("short", 11) == "short"


def test_long_lines_break_between_fields_then_words_never_inside_one():
    line = f"Topic: {TOPIC}\tTopicId: WLYSgC5XQu2tBBHUvoQW2A\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: "
    out = wrap(line, WIDTH)
    assert out[0] == f"Topic: {TOPIC}\tTopicId: WLYSgC5XQu2tBBHUvoQW2A"
    assert out[1] == "    PartitionCount: 3\tReplicationFactor: 1\tConfigs:"
    out = wrap("  message.timestamp.before.max.ms=9223372036854775807 sensitive=false source=DEFAULT_CONFIG "
               "default=true", WIDTH)
    assert out == ["  message.timestamp.before.max.ms=9223372036854775807 sensitive=false",
                   "      source=DEFAULT_CONFIG default=true"]
    member = "consumer-b15850-4e8aa360-18f3-4616-b21c-d1013e714cff"
    assert wrap(f"  member {member} (client consumer-b15850): {TOPIC}-0", WIDTH) == [
        f"  member {member}", f"      (client consumer-b15850): {TOPIC}-0"]
    # a word longer than a line (a very narrow terminal) breaks after a comma or hyphen
    assert wrap(f"TopicPartitions {TOPIC}-0,{TOPIC}-1", 30) == ["TopicPartitions", f"    {TOPIC}-0,", f"    {TOPIC}-1"]


# -- live: a group of three, an open transaction, an idempotent producer ----------------------


def _env(data_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "KCLI_DEBUG", "TMUX")}
    env.update(KCLI_DATA_DIR=data_dir, PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _kcli_json(data_dir: str, *args: str) -> list:
    """A command's --output json, run in this process (the words and ids the text must show)."""
    from typer.testing import CliRunner

    from kcli.cli.app import app

    r = CliRunner().invoke(app, ["--data-dir", data_dir, *args, "-o", "json"])
    assert r.exit_code == 0, (r.stdout, r.exception)
    return [json.loads(line) for line in r.stdout.splitlines()]


def _ok(data_dir: str, *args: str, input: str | None = None):
    from typer.testing import CliRunner

    from kcli.cli.app import app

    r = CliRunner().invoke(app, ["--data-dir", data_dir, *args], input=input)
    assert r.exit_code == 0, (args, r.stdout, r.exception)
    return r


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A data directory with three live members of GROUP on a 3-partition TOPIC, an open
    transaction of TXN_ID on it, and an idempotent producer's records."""
    data_dir = str(tmp_path_factory.mktemp("tables") / "kcli-data")
    _ok(data_dir, "topic", "create", TOPIC, "--partitions", "3")
    _ok(data_dir, "produce", TOPIC, "--partition", "0", input="a\nb\nc\n")
    scene = subprocess.Popen([sys.executable, str(HELPERS / "live_scene.py"), data_dir, TOPIC, GROUP, TXN_ID, "3"],
                             stdout=subprocess.PIPE, text=True, env=_env(data_dir), cwd=str(ROOT))
    try:
        assert scene.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while True:
            g = _kcli_json(data_dir, "group", "describe", GROUP)[0]
            if g["state"] == "Stable" and len(g["members"]) == 3 and all(m["assignment"] for m in g["members"]):
                break
            assert time.monotonic() < deadline, g
            time.sleep(0.2)
        yield data_dir
    finally:
        scene.kill()
        scene.wait()


def _known_words(data_dir: str) -> tuple[set[str], set[str]]:
    """Every word the commands print (from their JSON), and the ids among them."""
    g = _kcli_json(data_dir, "group", "describe", GROUP)[0]
    ids = {m["member_id"] for m in g["members"]} | {m["client_id"] for m in g["members"]} | {TXN_ID}
    assert all(len(m["member_id"]) > 50 for m in g["members"])
    words: set[str] = set(ids) | {TOPIC, GROUP, "DEFAULT_CONFIG", "localhost:9092"}
    for h in HEADERS.values():
        words.update(h)
    for c in _kcli_json(data_dir, "topic", "configs", TOPIC, "--all"):
        words.update({c["name"], f"{c['name']}={c['value']}"})
    for p in _kcli_json(data_dir, "producers", "describe", TOPIC):
        words.add(str(p["last_timestamp"]))
    for t in _kcli_json(data_dir, "transactions", "list"):
        words.update({t["state"], str(t["producer_id"])})
    return {w for w in words if len(w) >= 4}, ids


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:]
            out[current] = []
        elif current is not None:
            out[current].append(line)
    assert "end" in out, text
    return out


def _tmux(*args: str, sock: str, env: dict, check: bool = True) -> str:
    return subprocess.run(["tmux", "-L", sock, "-f", os.devnull, *args], env=env, capture_output=True, text=True,
                          check=check, timeout=30).stdout


def _in_tmux(data_dir: str, commands: list[str]) -> tuple[str, str]:
    """The pane of an 80x30 tmux window the commands ran in: as shown (lines the terminal wrapped
    stay split) and joined (those lines put back together)."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the terminal-width tests (apt-get install tmux)")
    env = dict(_env(data_dir), LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM=os.environ.get("TERM") or "xterm")
    sock = f"kcli-tables-{os.getpid()}"
    shell = " ".join(["exec", sys.executable, str(HELPERS / "kcli_many.py"), data_dir, "--linger"]
                     + ["'" + c + "'" for c in commands])
    try:
        _tmux("-u", "new-session", "-d", "-s", "t", "-x", str(WIDTH), "-y", "30", shell, sock=sock, env=env)
        assert _tmux("display-message", "-p", "-t", "t", "#{pane_width}", sock=sock, env=env).strip() == str(WIDTH)
        deadline = time.monotonic() + 60
        while True:
            shown = _tmux("capture-pane", "-p", "-t", "t", "-S", "-", "-E", "-", sock=sock, env=env)
            if "### end" in shown:
                break
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        joined = _tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-", "-E", "-", sock=sock, env=env)
        return shown, joined
    finally:
        _tmux("kill-server", sock=sock, env=env, check=False)


def _assert_not_folded(lines: list[str], words: set[str], headers: list[str]) -> None:
    tokens = [t for line in lines for t in line.split()]
    for h in headers:
        assert h in tokens, (h, lines)  # every header word whole, on one line
    for a, b in zip(lines, lines[1:]):
        if not a.split() or not b.split():
            continue
        last, first = a.split()[-1], b.split()[0]
        for w in words:
            assert not (w in last + first and w not in last and w not in first), (w, a, b)


def _assert_ids_whole_or_shortened(lines: list[str], ids: set[str]) -> None:
    text = "\n".join(lines)
    for token in re.findall(r"\S*…\S*", text):
        head, tail = token.strip("(),:").split("…")
        assert any(i.startswith(head) and i.endswith(tail) for i in ids), token


def test_tables_at_80_columns_fold_no_word_and_shorten_long_ids(live):
    words, ids = _known_words(live)
    shown, joined = _in_tmux(live, list(HEADERS) + WIDE)
    # the terminal wrapped no line: nothing was wider than the pane
    assert shown.splitlines() == joined.splitlines()
    sections = _sections(shown)
    for command, headers in HEADERS.items():
        lines = sections[command]
        assert lines and not any(line.startswith("### exit") for line in lines), (command, lines)
        assert all(len(line) <= WIDTH for line in lines), command
        _assert_not_folded(lines, words, headers)
        _assert_ids_whole_or_shortened(lines, ids)
    members = _kcli_json(live, "group", "describe", GROUP)[0]["members"]
    # the default --members view fits a table by shortening the member ids; --wide shows them whole
    member_rows = [line for line in sections[f"group describe {GROUP} --members"] if line.startswith(GROUP)]
    assert len(member_rows) == 3 and all("…" in row for row in member_rows)
    for command in WIDE:
        lines = sections[command]
        assert all(len(line) <= WIDTH for line in lines) and "…" not in "\n".join(lines), command
        _assert_not_folded(lines, words, [])
    wide_tokens = {t for line in sections[f"group describe {GROUP} --members --wide"] for t in line.split()}
    assert {m["member_id"] for m in members} <= wide_tokens
    assert TXN_ID in {t for line in sections["transactions list --wide"] for t in line.split()}
    txn = sections["transactions list"]
    assert any("Ongoing" in line for line in txn), txn


def test_piped_tables_at_columns_80_are_plain_whole_and_one_line_per_row(live):
    env = dict(_env(live), COLUMNS="80", LINES="30")
    r = subprocess.run([sys.executable, str(HELPERS / "kcli_many.py"), live, *HEADERS], capture_output=True,
                       text=True, env=env, cwd=str(ROOT), timeout=60)
    assert r.returncode == 0, r.stderr
    sections = _sections(r.stdout)
    assert "…" not in r.stdout
    g = _kcli_json(live, "group", "describe", GROUP)[0]
    lines = sections[f"group describe {GROUP}"]
    header = next(i for i, line in enumerate(lines) if line.startswith("TOPIC"))
    assert lines[header].split() == HEADERS[f"group describe {GROUP}"]
    rows = [line.split() for line in lines[header + 1:]]
    assert len(rows) == 3 and all(len(row) == 7 for row in rows)
    assert {row[5] for row in rows} == {m["member_id"] for m in g["members"]}
    assert max(len(line) for line in lines) > WIDTH  # wider than COLUMNS, and still one line per row
    assert lines[0].startswith(f"Group {GROUP}: state Stable,") and g["leader"] in lines[0]
    txn = sections["transactions list"]
    assert txn[0].split() == HEADERS["transactions list"] and txn[1].split()[0] == TXN_ID
    producers = sections[f"producers describe {TOPIC}"]
    assert producers[0].split() == HEADERS[f"producers describe {TOPIC}"] and len(producers) == 3
    described = sections[f"topic describe {TOPIC}"]
    assert described[0].count("\t") == 4 and described[1].split() == HEADERS[f"topic describe {TOPIC}"][:8]


def test_tables_module_is_what_common_hands_out():
    from kcli.cli import common

    assert common.table is tables.table
