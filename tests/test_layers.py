"""The layers contract: kcli's imports point down, and no two modules import each other.

    kcli/cli  ->  clients (kcli/*.py, kcli/streams, kcli/remote)  ->  kcli/broker  ->  storage  ->  kcli/common
                                         kcli/server  ->  kcli/broker

Every ``.py`` file under ``kcli/`` and ``storage/`` is parsed with ``ast`` and the whole tree
is walked, so an import inside a function, a method or an ``if TYPE_CHECKING:`` block counts
as much as one at the top of the file (a lazy import keeps start-up cheap; it does not make a
dependency go away). Relative imports are resolved to absolute module names; ``from X import
Y`` counts as importing ``X.Y`` when ``X.Y`` is a module of the tree, and as importing ``X``
otherwise; ``importlib.import_module("...")`` with a literal name counts too.

The layer of a module is the first of these that matches (what each may import from kcli and
storage; the standard library and third-party packages are always allowed):

- ``kcli.common`` (kcli/common/**): kcli.common only.
- ``storage`` (storage/**): storage and kcli.common.
- ``kcli.broker`` (kcli/broker/**, and kcli/cluster/**, the replicated cluster's controller,
  replicas and broker processes): kcli.broker, kcli.cluster, storage and kcli.common.
- ``kcli.server`` (kcli/server/**): kcli.server, kcli.broker, kcli.common and storage's codec
  modules (``SERVER_STORAGE``).
- ``kcli.cli`` (kcli/cli/**, and kcli/__main__.py, which only starts the command line): the
  cli, the clients and kcli.common; storage only from ``kcli/cli/log.py`` (log dump and
  verify read the files); never the broker or the server.
- clients (every other module of the kcli package): the clients, kcli.common, the broker's
  public face (``CLIENT_BROKER``: the package, which exports the factory, its API and its
  fault injection, and the kcli.cluster package) and storage's pure codec and config modules (``CLIENT_STORAGE``);
  ``kcli/serve.py`` (``SERVER_STARTERS``) may also import the ``kcli.server`` package, which
  is how ``kcli serve`` starts the wire server.

The cycle check builds the module graph from the same imports (``kcli/__init__.py``'s lazy
``__getattr__`` imports are edges like any other) and reports every strongly connected
component of more than one module, with the imports inside it.
"""

from __future__ import annotations

import ast
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kcli", "storage")

SERVER_STORAGE = frozenset({"storage.record_batch", "storage.compression", "storage.varint", "storage.checksum"})
CLIENT_STORAGE = SERVER_STORAGE | {"storage.topic_config"}
CLIENT_BROKER = frozenset({"kcli.broker", "kcli.broker.api", "kcli.broker.faults", "kcli.cluster"})
STORAGE_READERS = frozenset({"kcli.cli.log"})  # the cli modules that may read files through storage
# The cli speaks only to clients, so ``kcli serve`` starts the wire server through one client
# module; it may import the server's package (its public face), nothing else of the server.
SERVER_STARTERS = frozenset({"kcli.serve"})

COMMON, STORAGE, BROKER, SERVER, CLIENTS, CLI = "common", "storage", "broker", "server", "clients", "cli"
LAYER_NAMES = {COMMON: "kcli.common", STORAGE: "storage", BROKER: "the broker", SERVER: "the server",
               CLIENTS: "the clients", CLI: "the cli"}


# -- reading the tree ----------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    path: str  # the importing file, relative to the root, e.g. kcli/cli/group.py
    line: int
    source: str  # the importing module, e.g. kcli.cli.group
    target: str  # the imported module, absolute, e.g. kcli.broker.broker


def module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(root: Path) -> dict[str, Path]:
    """Module name -> file (relative to ``root``) for every .py file of the packages."""
    modules = {}
    for pkg in PACKAGES:
        base = root / pkg
        if not base.is_dir():
            continue
        for f in sorted(base.rglob("*.py")):
            if "__pycache__" in f.parts:
                continue
            rel = f.relative_to(root)
            modules[module_name(rel)] = rel
    return modules


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level > len(package):
        raise ValueError(f"relative import beyond the top-level package in {module}")
    base = package[: len(package) - level + 1]
    return ".".join(base + ([name] if name else []))


def _literal_import_module(node: ast.Call) -> str | None:
    f = node.func
    named = (isinstance(f, ast.Attribute) and f.attr == "import_module") or (
        isinstance(f, ast.Name) and f.id in ("import_module", "__import__"))
    if named and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        name = node.args[0].value
        return None if name.startswith(".") else name
    return None


def imports_of(root: Path, rel: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import anywhere in the file (module level, functions, classes, conditionals)."""
    source = module_name(rel)
    is_package = rel.name == "__init__.py"
    tree = ast.parse((root / rel).read_text(encoding="utf-8"), filename=str(rel))
    path = rel.as_posix()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append(Import(path, node.lineno, source, alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(source, is_package, node.level, node.module) if node.level
                    else node.module or "")
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append(Import(path, node.lineno, source, sub if alias.name != "*" and sub in modules else base))
        elif isinstance(node, ast.Call):
            name = _literal_import_module(node)
            if name:
                out.append(Import(path, node.lineno, source, name))
    return sorted(set(out), key=lambda i: (i.path, i.line, i.target))


def all_imports(root: Path) -> tuple[dict[str, Path], list[Import]]:
    modules = discover(root)
    imports = []
    for rel in modules.values():
        imports += imports_of(root, rel, modules)
    return modules, imports


# -- the rules -----------------------------------------------------------------------------


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer(module: str) -> str | None:
    """The layer of a kcli or storage module (None: the standard library or a third party)."""
    if within(module, "kcli.common"):
        return COMMON
    if within(module, "storage"):
        return STORAGE
    if within(module, "kcli.broker") or within(module, "kcli.cluster"):
        return BROKER
    if within(module, "kcli.server"):
        return SERVER
    if within(module, "kcli.cli") or module == "kcli.__main__":
        return CLI
    if within(module, "kcli"):
        return CLIENTS
    return None


def _codecs(names) -> str:
    return ", ".join(sorted(names))


def why_not(source: str, target: str) -> str | None:
    """None if ``source`` may import ``target``, else the rule it breaks (for the message)."""
    src, tgt = layer(source), layer(target)
    if tgt is None or src is None or tgt == src:
        return None
    if src == COMMON:
        return f"kcli.common may not import {LAYER_NAMES[tgt]}: it imports only the standard library, third-party packages and kcli.common"
    if src == STORAGE:
        return None if tgt == COMMON else f"storage may not import {LAYER_NAMES[tgt]}"
    if src == BROKER:
        return None if tgt in (STORAGE, COMMON) else f"the broker may not import {LAYER_NAMES[tgt]}"
    if src == SERVER:
        if tgt in (BROKER, COMMON) or target in SERVER_STORAGE:
            return None
        if tgt == STORAGE:
            return f"the server may import from storage only its codec modules ({_codecs(SERVER_STORAGE)})"
        return f"the server may not import {LAYER_NAMES[tgt]}"
    if src == CLIENTS:
        if tgt == COMMON or target in CLIENT_BROKER or target in CLIENT_STORAGE:
            return None
        if tgt == SERVER and source in SERVER_STARTERS and target == "kcli.server":
            return None
        if tgt == BROKER:
            return f"clients may import from the broker only {_codecs(CLIENT_BROKER)}"
        if tgt == STORAGE:
            return f"clients may import from storage only its codec and config modules ({_codecs(CLIENT_STORAGE)})"
        return f"clients may not import {LAYER_NAMES[tgt]}"
    if src == CLI:
        if tgt in (CLIENTS, COMMON) or (tgt == STORAGE and source in STORAGE_READERS):
            return None
        if tgt == STORAGE:
            return "cli may not import storage (only kcli/cli/log.py may, to read the files)"
        return f"cli may not import {LAYER_NAMES[tgt]}"
    raise AssertionError(src)


def layer_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        reason = why_not(imp.source, imp.target)
        if reason:
            out.append(f"{imp.path}:{imp.line} imports {imp.target} ({reason})")
    return out


# -- cycles --------------------------------------------------------------------------------


def _node(target: str, modules: dict[str, Path]) -> str | None:
    """The module of the tree that importing ``target`` runs: the longest known prefix."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def module_graph(modules: dict[str, Path], imports: list[Import]) -> dict[str, dict[str, list[Import]]]:
    graph: dict[str, dict[str, list[Import]]] = {m: defaultdict(list) for m in modules}
    for imp in imports:
        dst = _node(imp.target, modules)
        if dst is not None and dst != imp.source:
            graph[imp.source][dst].append(imp)
    return graph


def strongly_connected(graph: dict[str, dict]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in a stable order, members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    out.append(sorted(comp))
    return sorted(out)


def _shortest_cycle(graph, comp: list[str]) -> list[str]:
    start, members = comp[0], set(comp)
    prev = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v]):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def import_cycles(modules: dict[str, Path], imports: list[Import]) -> list[str]:
    graph = module_graph(modules, imports)
    out = []
    for comp in strongly_connected(graph):
        if len(comp) < 2:
            continue
        members = set(comp)
        lines = [f"cycle among {len(comp)} modules: {', '.join(comp)}",
                 f"  e.g. {' -> '.join(_shortest_cycle(graph, comp))}"]
        for src in comp:
            for dst in sorted(graph[src]):
                if dst in members:
                    for imp in graph[src][dst]:
                        lines.append(f"  {imp.path}:{imp.line} imports {imp.target}")
        out.append("\n".join(lines))
    return out


def _grouped(violations: list[str]) -> str:
    by_file: dict[str, list[str]] = defaultdict(list)
    for v in violations:
        by_file[v.split(":", 1)[0]].append(v)
    return "\n".join(f"{f}:\n" + "\n".join(f"  {v}" for v in vs) for f, vs in sorted(by_file.items()))


# -- the contract, on this tree ------------------------------------------------------------


def test_imports_point_down_the_layers():
    _, imports = all_imports(ROOT)
    found = layer_violations(imports)
    if found:
        pytest.fail(f"{len(found)} imports break the layers:\n{_grouped(found)}", pytrace=False)


def test_no_import_cycles_between_modules():
    modules, imports = all_imports(ROOT)
    found = import_cycles(modules, imports)
    if found:
        pytest.fail(f"{len(found)} import cycles:\n" + "\n".join(found), pytrace=False)


def test_checker_reads_this_tree():
    modules, imports = all_imports(ROOT)
    assert "kcli.cli.app" in modules and "storage.record_batch" in modules
    edges = {(i.source, i.target) for i in imports}
    assert ("kcli.cli.app", "kcli.cli.completion") in edges  # from .completion import (...)
    assert ("kcli", "kcli.producer") in edges  # kcli.__getattr__'s lazy import


# -- the checker catches what it must ------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for pkg_dir in {p.parent for p in tmp_path.rglob("*.py")}:
        if not (pkg_dir / "__init__.py").exists() and pkg_dir != tmp_path:
            (pkg_dir / "__init__.py").write_text("")
    return tmp_path


def test_checker_catches_an_import_inside_a_function(tmp_path):
    root = _tree(tmp_path, {
        "kcli/broker/broker.py": "class Broker: ...\n",
        "kcli/cli/group.py": "import typer\n\n\ndef describe():\n    if True:\n        from ..broker.broker import Broker\n",
    })
    _, imports = all_imports(root)
    assert layer_violations(imports) == [
        "kcli/cli/group.py:6 imports kcli.broker.broker (cli may not import the broker)"]


def test_checker_catches_an_upward_import_from_storage(tmp_path):
    root = _tree(tmp_path, {
        "kcli/producer.py": "class Producer: ...\n",
        "kcli/common/errors.py": "",
        "storage/log.py": "from kcli.common import errors\nfrom typing import TYPE_CHECKING\n"
                          "if TYPE_CHECKING:\n    from kcli import producer\n",
    })
    _, imports = all_imports(root)
    assert layer_violations(imports) == [
        "storage/log.py:4 imports kcli.producer (storage may not import the clients)"]


def test_checker_catches_a_two_module_cycle(tmp_path):
    root = _tree(tmp_path, {
        "storage/a.py": "from storage.b import thing\n",
        "storage/b.py": "thing = 1\n\n\ndef back():\n    from . import a\n",
        "storage/c.py": "import storage.a\n",
    })
    modules, imports = all_imports(root)
    assert import_cycles(modules, imports) == [
        "cycle among 2 modules: storage.a, storage.b\n"
        "  e.g. storage.a -> storage.b -> storage.a\n"
        "  storage/a.py:1 imports storage.b\n"
        "  storage/b.py:5 imports storage.a"]


def test_checker_allows_what_each_layer_may_import(tmp_path):
    root = _tree(tmp_path, {
        "kcli/__init__.py": "def __getattr__(name):\n    from . import producer\n    return producer\n",
        "kcli/producer.py": "from .broker import open_broker\nfrom kcli.broker import api, faults\n"
                            "from storage import record_batch, topic_config\nfrom .common.errors import KafkaError\n",
        "kcli/broker/__init__.py": "from .broker import open_broker\n",
        "kcli/broker/broker.py": "import storage.log\nfrom kcli.common import clock\n",
        "kcli/broker/api.py": "", "kcli/broker/faults.py": "",
        "kcli/server/wire.py": "from kcli.broker import api\nfrom storage.varint import encode\n",
        "kcli/cli/log.py": "from storage.dump import dump\nfrom kcli import Consumer\n",
        "kcli/__main__.py": "from kcli.cli.log import main\n",
        "storage/log.py": "import os, lz4\nfrom .record_batch import decode\nfrom kcli.common.errors import KafkaError\n",
        "storage/record_batch.py": "", "storage/topic_config.py": "", "storage/varint.py": "",
        "storage/dump.py": "",
        "kcli/common/errors.py": "from . import clock\n", "kcli/common/clock.py": "import time\n",
    })
    modules, imports = all_imports(root)
    assert layer_violations(imports) == []
    assert import_cycles(modules, imports) == []


def test_checker_names_the_broken_rule(tmp_path):
    root = _tree(tmp_path, {
        "kcli/common/paths.py": "from kcli.admin import Admin\n",
        "kcli/admin.py": "from kcli.broker.group_coordinator import GroupCoordinator\nimport storage.metadata\n"
                         "from .cli import app\n",
        "kcli/broker/group_coordinator.py": "from kcli.consumer import Consumer\n",
        "kcli/consumer.py": "",
        "kcli/server/wire.py": "from storage.log import PartitionLog\n",
        "kcli/cli/topic.py": "from storage.topics import TopicStore\n",
        "storage/metadata.py": "", "storage/topics.py": "", "storage/log.py": "",
        "kcli/cli/app.py": "",
    })
    _, imports = all_imports(root)
    assert layer_violations(imports) == [
        "kcli/admin.py:1 imports kcli.broker.group_coordinator "
        "(clients may import from the broker only kcli.broker, kcli.broker.api, kcli.broker.faults, kcli.cluster)",
        "kcli/admin.py:2 imports storage.metadata (clients may import from storage only its codec and config "
        "modules (storage.checksum, storage.compression, storage.record_batch, storage.topic_config, storage.varint))",
        "kcli/admin.py:3 imports kcli.cli.app (clients may not import the cli)",
        "kcli/broker/group_coordinator.py:1 imports kcli.consumer (the broker may not import the clients)",
        "kcli/cli/topic.py:1 imports storage.topics (cli may not import storage (only kcli/cli/log.py may, to read the files))",
        "kcli/common/paths.py:1 imports kcli.admin (kcli.common may not import the clients: it imports only the "
        "standard library, third-party packages and kcli.common)",
        "kcli/server/wire.py:1 imports storage.log (the server may import from storage only its codec modules "
        "(storage.checksum, storage.compression, storage.record_batch, storage.varint))",
    ]
