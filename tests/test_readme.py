"""The README's tour runs as written: every ``$ command`` in its console blocks is run in
order in a fresh directory, and its output must match the lines shown (``...`` in a shown
line stands for any text, such as a timestamp)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def console_blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    blocks = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


def line_matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def run_tour(readme: str, cwd, env: dict) -> None:
    """Each ``$ command`` in order; an ``export NAME=VALUE`` step sets NAME for the steps after it."""
    steps = [s for block in console_blocks(readme) for s in block]
    assert len(steps) >= 10
    for command, expected in steps:
        if command.startswith("export "):
            name = command[len("export "):].split("=", 1)[0]
            value = subprocess.run(["bash", "-c", f'{command}; printf %s "${name}"'], cwd=cwd, env=env,
                                   capture_output=True, text=True, timeout=10).stdout
            env[name] = value
            continue
        result = subprocess.run(["bash", "-c", command + " 2>&1"], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=60)
        actual = result.stdout.splitlines()
        assert len(actual) == len(expected), f"$ {command}\nexpected:\n" + "\n".join(expected) + "\ngot:\n" + result.stdout
        for e, a in zip(expected, actual):
            assert line_matches(e, a), f"$ {command}\nexpected: {e}\ngot:      {a}"


def _env() -> dict:
    env = dict(os.environ)
    env.pop("KCLI_DATA_DIR", None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def test_readme_tour_runs_as_written(tmp_path):
    run_tour((ROOT / "README.md").read_text(), tmp_path, _env())


def test_readme_tour_runs_as_written_after_the_quickstart(tmp_path):
    # the set-up's quickstart leaves `orders` in ./kcli-data; the tour must not trip over it
    env = _env()
    quick = subprocess.run(["bash", str(ROOT / "sample-data" / "quickstart.sh")], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert quick.returncode == 0, quick.stderr
    run_tour((ROOT / "README.md").read_text(), tmp_path, env)
    assert "KCLI_DATA_DIR" not in env or env["KCLI_DATA_DIR"] == str(tmp_path / "tour-data")


def test_readme_python_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("RecordMetadata(topic='payments', partition=")
    assert "b'10.00 EUR'" in lines[1] and "b'customer-1'" in lines[1]


def test_quickstart_script_runs(tmp_path):
    env = dict(os.environ)
    env.pop("KCLI_DATA_DIR", None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    result = subprocess.run(["bash", str(ROOT / "sample-data" / "quickstart.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "10000 record(s) to orders" in result.stderr
    assert "record(s) to orders" not in result.stdout  # the produce summary goes to stderr, data to stdout
    assert "checked 3 partition(s), 3 segment(s)" in result.stdout and result.stdout.rstrip().endswith("10000 record(s): OK")
    assert re.search(r"^\s+11 customer-0042 1$", result.stdout, re.M)  # one key, one partition
