"""Completion records: which tiles of an output are durably written, and by what pipeline.

Beside every output `NAME` lives `NAME.journal`, JSON lines:

    {"tilewise": 1, "fingerprint": {...}, "tile": [512, 512], "tiles": 64}    the header
    {"run": 1}                                                                 a run started
    17                                                                         tile 17 is done
    {"complete": true}                                                         all moved into place

A tile is appended (by flat index, C order) only after its data is durable, so whatever a
crash leaves in the journal is on disk; a line torn by the crash is ignored. The journal is
flushed after every record (a killed process loses nothing) and fsynced at most once a second
and at the end (a power cut loses at most a second of records, which are then redone).

The fingerprint says what produced the output: every node that feeds it (op names, user
function identity and a hash of its code, margins, parameters, dtypes; input paths with size,
modification time and a hash of their first and last MiB), the tile grid and the output format.
A resumed run must match it; `differences` says in words what changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import OutputError, OutputExistsError
from .graph import Image, OpNode, SliceNode, SourceNode
from .io import Sink
from .io.base import fsync
from .pipeline import Pipeline
from .regions import Box

VERSION = 1
#: Bytes hashed at each end of an input file as a cheap content check.
CHECK_BYTES = 1 << 20
#: Seconds between fsyncs of a journal.
SYNC_EVERY = 1.0


def path_of(output: str) -> str:
    return output + ".journal"


@dataclass(frozen=True)
class Record:
    """What a journal on disk says."""

    fingerprint: dict[str, Any]
    tile: tuple[int, ...]
    tiles: int
    done: np.ndarray
    complete: bool
    runs: int

    @property
    def count(self) -> int:
        return int(self.done.sum())


def header(path: str) -> dict[str, Any] | None:
    """The first line of the journal at `path`, if it is whole, without reading the rest."""
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline()
        return json.loads(line) if line.endswith("\n") else None
    except (FileNotFoundError, ValueError):
        return None


def read(path: str) -> Record | None:
    """The journal at `path`, or None if there is none (or a crash left only a torn header)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    # Only lines ended by a newline count: a crash may leave a torn last line, and a torn
    # record ("9" of "95") would otherwise read as another tile.
    lines = text.rpartition("\n")[0].split("\n")
    try:
        header = json.loads(lines[0])
        done = np.zeros(header["tiles"], bool)
        tile = tuple(header["tile"])
        fingerprint = header["fingerprint"]
    except (ValueError, KeyError, TypeError):
        return None
    complete, runs = False, 0
    for number, line in enumerate(lines[1:], start=2):
        try:
            entry = json.loads(line)
            if isinstance(entry, int):
                done[entry] = True
            elif entry.get("complete"):
                complete = True
            elif "run" in entry:
                runs += 1
        except (ValueError, IndexError, AttributeError):
            raise OutputError(f"journal {path} is damaged at line {number}; delete it and "
                              "the output's .partial to start again") from None
    return Record(fingerprint, tile, header["tiles"], done, complete, runs)


class Journal:
    """A journal held by one run: locked first, so that two runs never write one output."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = open(path, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise OutputError(f"output {path.removesuffix('.journal')} is being written by "
                              "another tilewise run right now; wait for it or stop it") from None
        self.synced = time.monotonic()

    def start(self, fingerprint: dict[str, Any], tile: tuple[int, ...], tiles: int,
              fresh: bool, runs: int) -> None:
        """Begin a run: a new header if `fresh`, else go on after the last whole line."""
        self.file.seek(0)
        text = self.file.read()
        if fresh:
            self.file.truncate(0)
            header = {"tilewise": VERSION, "fingerprint": fingerprint, "tile": list(tile),
                      "tiles": tiles}
            self.file.write(json.dumps(header) + "\n")
            self._sync()
            fsync(os.path.dirname(os.path.abspath(self.path)))
        elif text and not text.endswith("\n"):  # a line torn by a crash or a full disk
            self.file.truncate(text.rfind("\n") + 1)  # JSON lines are ASCII: chars are bytes
        self.file.write(json.dumps({"run": runs + 1, "started": time.time()}) + "\n")
        self._sync()

    def record(self, flat: int) -> None:
        self.file.write(f"{flat}\n")
        self.file.flush()
        if time.monotonic() - self.synced >= SYNC_EVERY:
            self._sync()

    def complete(self) -> None:
        """Say that the output is in place (the run marker before it says a run opened it)."""
        self.file.write(json.dumps({"complete": True}) + "\n")
        self._sync()

    def close(self) -> None:
        """Sync and close; a failure here (a full disk) only loses records, to be redone."""
        with contextlib.suppress(OSError, ValueError):
            self._sync()
        with contextlib.suppress(OSError):
            self.file.close()

    def _sync(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.synced = time.monotonic()


def fingerprints(pipeline: Pipeline, sinks: Sequence[Sink], tile: tuple[int, ...]
                 ) -> list[dict[str, Any]]:
    """The fingerprint of each output of `pipeline`; a node (an input file) is checked once."""
    memo: dict[int, dict[str, Any]] = {}
    return [fingerprint(img, sink, tile, memo) if sink.resumable else {}
            for img, sink in zip(pipeline.outputs, sinks)]


def fingerprint(output: Image, sink: Sink, tile: tuple[int, ...],
                memo: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """What produced `output`: its nodes, the tile grid, the output format."""
    memo = {} if memo is None else memo
    nodes = Pipeline.of([output]).nodes
    for node in nodes:
        if id(node) not in memo:
            memo[id(node)] = _node(node)
    return {
        "nodes": [memo[id(n)] for n in nodes],
        "grid": {"shape": list(output.shape), "tile": list(tile)},
        "output": {"format": type(sink).__name__, "dtype": str(sink.dtype),
                   "axes": list(sink.axes), "chunks": list(sink.chunks)},
    }


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two fingerprints, in words, most telling first."""
    out = []
    if old.get("grid") != new.get("grid"):
        out.append(f"the tile grid changed from {_grid(old)} to {_grid(new)}")
    if old.get("output") != new.get("output"):
        out.append(f"the output changed from {_output(old)} to {_output(new)}")
    before, after = old.get("nodes", []), new.get("nodes", [])
    if [_name(n) for n in before] != [_name(n) for n in after]:
        out.append(f"the steps changed from {_names(before)} to {_names(after)}")
    else:
        for a, b in zip(before, after):
            out.extend(_node_changes(a, b))
    return out or ["the fingerprint format changed"]


def _node(node: Any) -> dict[str, Any]:
    if isinstance(node, SourceNode):
        source = node.source
        if source.path is None:
            whole = source.read(Box.of_shape(source.shape))
            return {"source": "array", "content": _array_hash(whole)}
        return {"source": source.path, **_file_check(source.path)}
    if isinstance(node, OpNode):
        func = node.op.func
        return {"op": node.name, "function": _identity(func), "code": _code_hash(func),
                "margin": list(node.margin), "dtypes": [str(d) for d in node.dtypes],
                "params": {k: _jsonable(v) for k, v in sorted(node.params.items())}}
    if isinstance(node, SliceNode):
        return {"slice": list(node.starts), "shape": list(node.shape),
                "dropped": list(node.dropped)}
    return {"node": type(node).__name__}


def _file_check(path: str) -> dict[str, Any]:
    """Size, modification time and a hash of the ends: for a folder (Zarr), of its files."""
    if os.path.isdir(path):
        files = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names)
        stats = [os.stat(f) for f in files]
        digest = hashlib.sha256()
        for f, st in zip(files, stats):
            digest.update(f"{os.path.relpath(f, path)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return {"size": sum(s.st_size for s in stats), "files": len(files),
                "check": digest.hexdigest()}
    st = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(CHECK_BYTES))
        if st.st_size > 2 * CHECK_BYTES:
            f.seek(-CHECK_BYTES, os.SEEK_END)
        digest.update(f.read(CHECK_BYTES))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "check": digest.hexdigest()}


def _identity(func: Any) -> str:
    target = getattr(func, "func", func)  # functools.partial
    module = getattr(target, "__module__", None) or type(target).__module__
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{name}"


def _code_hash(func: Any) -> str | None:
    """A hash of the function's code, so that an edited function is a different pipeline."""
    target = getattr(func, "func", func)
    try:
        text = inspect.getsource(target)
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        if code is None:
            return None
        text = repr((code.co_code, code.co_consts, code.co_names))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _array_hash(a: np.ndarray) -> str:
    digest = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
    digest.update(np.ascontiguousarray(a).data)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else {"array": _array_hash(value)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if callable(value):
        return {"function": _identity(value), "code": _code_hash(value)}
    return repr(value)


def _name(node: dict[str, Any]) -> str:
    return node.get("op") or ("input " + str(node["source"]) if "source" in node else "slice")


def _names(nodes: Iterable[dict[str, Any]]) -> str:
    return " -> ".join(_name(n) for n in nodes)


def _node_changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    if a == b:
        return []
    name = _name(a)
    if "source" in a:
        keys = ("size", "mtime_ns", "files", "check", "content")
        what = [k for k in keys if a.get(k) != b.get(k)]
        return [f"{name} changed ({', '.join(what)} differ)"]
    out = []
    for key in sorted(set(a.get("params", {})) | set(b.get("params", {}))):
        old, new = a.get("params", {}).get(key), b.get("params", {}).get(key)
        if old != new:
            out.append(f"parameter {key!r} of op {name!r} changed from {_short(old)} to "
                       f"{_short(new)}")
    if a.get("function") != b.get("function"):
        out.append(f"the function of op {name!r} changed from {a.get('function')} to "
                   f"{b.get('function')}")
    elif a.get("code") != b.get("code"):
        out.append(f"the code of op {name!r} ({a.get('function')}) changed")
    for key in ("margin", "dtypes"):
        if a.get(key) != b.get(key):
            out.append(f"the {key} of op {name!r} changed from {a.get(key)} to {b.get(key)}")
    return out or [f"op {name!r} changed"]


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _grid(fp: dict[str, Any]) -> str:
    grid = fp.get("grid", {})
    return f"tiles of {' x '.join(map(str, grid.get('tile', [])))} over " \
           f"{' x '.join(map(str, grid.get('shape', [])))}"


def _output(fp: dict[str, Any]) -> str:
    out = fp.get("output", {})
    return f"{out.get('format')} {out.get('dtype')} chunks {out.get('chunks')}"


@dataclass(frozen=True)
class State:
    """Where one output stands at the start of a run.

    `action` is "fresh" (start from nothing), "resume" (`done` tiles are kept), "commit" (every
    tile is written, only the move into place is missing) or "done" (nothing to do).
    """

    action: str
    done: np.ndarray
    runs: int = 0
    #: Whether the journal already says the output is complete.
    complete: bool = False


def state(sink: Sink, fp: dict[str, Any], tiles: int, overwrite: bool) -> State:
    """Decide, from the journal and what is on disk, what this run must do for `sink`."""
    nothing = np.zeros(tiles, bool)
    if overwrite:  # replace, recomputing everything: resuming is what a plain re-run does
        return State("fresh", nothing)
    record = read(path_of(sink.path))
    if record is None:
        return State("fresh", nothing)
    if record.fingerprint != fp or record.tiles != tiles:
        raise OutputExistsError(
            f"output {sink.path} was begun by a different pipeline: "
            f"{'; '.join(differences(record.fingerprint, fp))}; pass overwrite=True "
            "(tilewise run --overwrite) to start it again")
    staged, final = os.path.lexists(sink.staging), os.path.lexists(sink.path)
    everything = record.count == tiles
    if everything and final and not staged:
        return State("done", record.done, record.runs, record.complete)
    if everything and staged:
        return State("commit", record.done, record.runs)
    if staged:
        return State("resume", record.done, record.runs)
    return State("fresh", nothing)
