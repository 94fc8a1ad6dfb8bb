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

The journal of an output in an object store (`s3://bucket/out.zarr.journal`) lives in the
store: objects cannot be appended to, so it is held in memory and written whole at most once a
second and at the end (a killed run loses at most a second of records, which are then redone),
each write conditional on the ETag of the last (`StoreJournal`).

The fingerprint says what produced the output: every node that feeds it, as each node
describes itself (`Node.fingerprint`: op names, user function identity and a hash of its code,
margins, parameters, dtypes; `Source.fingerprint`: input paths with size, modification time and
a hash of their first and last MiB), the tile grid and the output format. A resumed run must
match it; `fingerprints.differences` says in words what changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import OutputError, OutputExistsError
from .fingerprints import differences
from .graph import Image
from .io import Sink, objectstore
from .io.base import fsync
from .io.location import is_local
from .pipeline import Pipeline

VERSION = 1
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


def header(path: str, storage: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The first line of the journal at `path`, if it is whole, without reading the rest
    (`storage`: fsspec options, for a journal in an object store)."""
    if is_local(path):
        try:
            with open(path, "rb") as f:
                line = f.readline()
        except FileNotFoundError:
            return None
    else:
        found = objectstore.read(path, storage)
        data = b"" if found is None else found[0]
        line = data[:data.find(b"\n") + 1]  # nothing, if there is no whole line
    if not line.endswith(b"\n"):  # a crash left a torn header: nothing was recorded
        return None
    return _header(path, line)


def _header(path: str, line: bytes) -> dict[str, Any]:
    try:
        head = json.loads(line.decode("ascii"))
        if not isinstance(head, dict) or not isinstance(head.get("tiles"), int) \
                or not isinstance(head.get("fingerprint"), dict):
            raise ValueError("no fingerprint and tile count")
        tuple(head["tile"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise damaged(path, 1, exc) from None
    return head


def damaged(path: str, line: int, why: object) -> OutputError:
    """The error for a journal that cannot be read: nothing can say which tiles are done."""
    output = path.removesuffix(".journal")
    return OutputError(
        f"journal {path} is damaged at line {line} ({why}), so which tiles of {output} are "
        "done is unknown; pass overwrite=True (tilewise run --overwrite) to compute the output "
        "again")


def read(path: str, storage: Mapping[str, Any] | None = None) -> Record | None:
    """The journal at `path`, or None if there is none (or a crash left only a torn header).

    A journal that is there but cannot be parsed is an `OutputError`: resuming from a guess
    could leave tiles unwritten in an output that looks complete.
    """
    if is_local(path):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
    else:
        found = objectstore.read(path, storage)
        if found is None:
            return None
        data = found[0]
    # Only lines ended by a newline count: a crash may leave a torn last line, and a torn
    # record ("9" of "95") would otherwise read as another tile.
    lines = data.rpartition(b"\n")[0].split(b"\n")
    if not lines[0]:
        return None
    head = _header(path, lines[0] + b"\n")
    done = np.zeros(head["tiles"], bool)
    complete, runs = False, 0
    for number, line in enumerate(lines[1:], start=2):
        try:
            entry = json.loads(line.decode("ascii"))
            if isinstance(entry, int) and not isinstance(entry, bool) and entry >= 0:
                done[entry] = True
            elif entry.get("complete"):
                complete = True
            elif "run" in entry:
                runs += 1
            else:
                raise ValueError(f"unknown entry {entry!r}")
        except (ValueError, IndexError, AttributeError, UnicodeDecodeError) as exc:
            raise damaged(path, number, exc) from None
    return Record(head["fingerprint"], tuple(head["tile"]), head["tiles"], done, complete, runs)


class Journal:
    """A journal held by one run: locked first, so that two runs never write one output."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.file = open(path, "a+", encoding="ascii")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"output {path.removesuffix('.journal')}: its journal {path} "
                              f"cannot be created ({exc.strerror or exc})") from None
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
        if fresh:
            self.file.truncate(0)
            header = {"tilewise": VERSION, "fingerprint": fingerprint, "tile": list(tile),
                      "tiles": tiles}
            self.file.write(json.dumps(header) + "\n")
            self._sync()
            fsync(os.path.dirname(os.path.abspath(self.path)))
        else:
            self.file.seek(0)
            text = self.file.read()
            if text and not text.endswith("\n"):  # a line torn by a crash or a full disk
                self.file.truncate(text.rfind("\n") + 1)  # JSON lines are ASCII
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


class StoreJournal:
    """A journal in an object store, beside its output. Nothing can be appended there, so the
    lines are kept here and the object is written whole, at most once a second and at the
    end; each write is conditional on the ETag this run last wrote (or on there being no
    journal, for a new one), so that of two runs writing one output, the second fails at its
    first write instead of both going on."""

    def __init__(self, path: str, storage: Mapping[str, Any] | None = None) -> None:
        self.path, self.storage = path, storage
        found = objectstore.read(path, storage)
        data, self.etag = (b"", None) if found is None else found
        text = data.decode("ascii", errors="replace")
        self.lines = text.split("\n")[:-1]  # only lines ended by a newline count
        self.synced = time.monotonic()
        self.dirty = False

    def start(self, fingerprint: dict[str, Any], tile: tuple[int, ...], tiles: int,
              fresh: bool, runs: int) -> None:
        if fresh:
            self.lines = [json.dumps({"tilewise": VERSION, "fingerprint": fingerprint,
                                      "tile": list(tile), "tiles": tiles})]
        self.lines.append(json.dumps({"run": runs + 1, "started": time.time()}))
        self._put()

    def record(self, flat: int) -> None:
        self.lines.append(str(flat))
        self.dirty = True
        if time.monotonic() - self.synced >= SYNC_EVERY:
            self._put()

    def complete(self) -> None:
        self.lines.append(json.dumps({"complete": True}))
        self._put()

    def close(self) -> None:
        """Write what is not written yet; a failure here only loses records, to be redone."""
        if self.dirty:
            with contextlib.suppress(OSError, OutputError):
                self._put()

    def _put(self) -> None:
        data = ("\n".join(self.lines) + "\n").encode("ascii")
        try:
            self.etag = objectstore.write(self.path, data, self.storage, replacing=self.etag)
        except OSError as exc:
            raise OutputError(
                f"output {self.path.removesuffix('.journal')} is being written by another "
                f"tilewise run (its journal {self.path} changed since this run last wrote it: "
                f"{exc}); wait for it or stop it") from None
        self.synced = time.monotonic()
        self.dirty = False


def held(sink: Sink) -> Journal | StoreJournal:
    """The journal of `sink`'s output, held by this run: a locked file beside a local output,
    an object beside one in an object store."""
    path = path_of(sink.path)
    if is_local(path):
        return Journal(path)
    return StoreJournal(path, getattr(sink, "storage_options", None))


def fingerprints(pipeline: Pipeline, sinks: Sequence[Sink], tile: tuple[int, ...]
                 ) -> list[dict[str, Any]]:
    """The fingerprint of each output of `pipeline`; a node (an input file) is checked once."""
    memo: dict[int, dict[str, Any]] = {}
    shape = list(pipeline.shape)
    return [fingerprint(img, sink, shape, tile, memo) if sink.resumable else {}
            for img, sink in zip(pipeline.outputs, sinks, strict=True)]


def fingerprint(output: Image, sink: Sink, shape: list[int], tile: tuple[int, ...],
                memo: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """What produced `output`: its nodes, the tile grid (of the driving grid `shape`), the
    output format."""
    memo = {} if memo is None else memo
    nodes = Pipeline.of([output]).nodes
    for node in nodes:
        if id(node) not in memo:
            memo[id(node)] = node.fingerprint()
    return {
        "nodes": [memo[id(n)] for n in nodes],
        "grid": {"shape": shape, "tile": list(tile)},
        "output": {"format": type(sink).__name__, "dtype": str(sink.dtype),
                   "axes": list(sink.axes), "chunks": list(sink.chunks),
                   "shape": list(sink.shape),
                   **({"settings": sink.settings} if sink.settings else {})},
    }


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
    record = read(path_of(sink.path), getattr(sink, "storage_options", None))
    if record is None:
        return State("fresh", nothing)
    if record.fingerprint != fp or record.tiles != tiles:
        raise OutputExistsError(
            f"output {sink.path} was begun by a different pipeline: "
            f"{'; '.join(differences(record.fingerprint, fp))}; pass overwrite=True "
            "(tilewise run --overwrite) to start it again")
    staged, final = sink.exists()
    everything = record.count == tiles
    if everything and final and not staged:
        return State("done", record.done, record.runs, record.complete)
    if everything and staged:
        return State("commit", record.done, record.runs)
    if staged:
        return State("resume", record.done, record.runs)
    return State("fresh", nothing)
