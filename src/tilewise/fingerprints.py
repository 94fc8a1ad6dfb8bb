"""Fingerprints: JSON-able descriptions of what produced an output, and their differences.

Every node and source describes itself (`Node.fingerprint`, `Source.fingerprint`) with the
helpers here; the journal stores the descriptions of all nodes feeding an output, and a resumed
run whose description differs is refused with `differences` saying, in words, what changed.
A node description is a dict with `kind` and `label` (how to name it) and any other keys; a
key whose value differs is reported by name, and an op's `params` one parameter at a time.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterable
from typing import Any

import numpy as np

#: Keys of a node description that name it rather than describe it.
NAMING = ("kind", "label")


def identity(func: Any) -> str:
    """`module:qualname` of a function (of the function inside a `functools.partial`)."""
    target = getattr(func, "func", func)
    module = getattr(target, "__module__", None) or type(target).__module__
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{name}"


def code_hash(func: Any) -> str | None:
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


def array_digest(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    digest = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
    digest.update(np.ascontiguousarray(a).data)
    return digest.hexdigest()


def jsonable(value: Any) -> Any:
    """`value` as JSON-able data that changes whenever the value does; an object that
    describes itself (a lazy reduction value) gives its own `fingerprint()`."""
    if hasattr(value, "fingerprint") and callable(value.fingerprint):
        return value.fingerprint()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else {"array": array_digest(value)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if callable(value):
        return {"function": identity(value), "code": code_hash(value)}
    return repr(value)


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two output fingerprints, in words, most telling first."""
    out = []
    if old.get("grid") != new.get("grid"):
        out.append(f"the tile grid changed from {_grid(old)} to {_grid(new)}")
    if old.get("output") != new.get("output"):
        out.append(f"the output changed from {_output(old)} to {_output(new)}")
    before, after = old.get("nodes", []), new.get("nodes", [])
    if [_name(n) for n in before] != [_name(n) for n in after]:
        out.append(f"the steps changed from {_names(before)} to {_names(after)}")
    else:
        for a, b in zip(before, after, strict=True):
            out.extend(_node_changes(a, b))
    return out or ["the fingerprint format changed"]


def _name(node: dict[str, Any]) -> str:
    """How a step is named in a sentence: `input /data/dem.tif`, `op 'gaussian'`."""
    kind, label = node.get("kind", "node"), node.get("label", "?")
    return f"input {label}" if kind == "input" else f"{kind} {label!r}"


def _names(nodes: Iterable[dict[str, Any]]) -> str:
    """A chain of steps: `input /data/dem.tif -> gaussian -> slice [0:10, 4]`."""
    return " -> ".join(str(n.get("label")) if n.get("kind") == "op" else _name(n)
                       for n in nodes)


def _node_changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    if a == b:
        return []
    name = _name(a)
    if a.get("kind") == "input":
        keys = [*a, *(k for k in b if k not in a)]
        what = [k for k in keys if k not in NAMING and a.get(k) != b.get(k)]
        return [f"{name} changed ({', '.join(what)} differ)"]
    out = []
    params_a, params_b = a.get("params", {}), b.get("params", {})
    for key in sorted(set(params_a) | set(params_b)):
        if params_a.get(key) != params_b.get(key):
            out.append(f"parameter {key!r} of {name} changed from "
                       f"{_short(params_a.get(key))} to {_short(params_b.get(key))}")
    if a.get("function") != b.get("function"):
        out.append(f"the function of {name} changed from {a.get('function')} to "
                   f"{b.get('function')}")
    elif a.get("code") != b.get("code"):
        out.append(f"the code of {name} ({a.get('function')}) changed")
    skip = {*NAMING, "params", "function", "code"}
    for key in sorted((set(a) | set(b)) - skip):
        if a.get(key) != b.get(key):
            out.append(f"the {key} of {name} changed from {_short(a.get(key))} to "
                       f"{_short(b.get(key))}")
    return out


def _short(value: Any) -> str:
    if isinstance(value, dict) and "reduction" in value:  # a lazy value (`Value.fingerprint`)
        which = "" if value.get("key") is None else f"[{value['key']}]"
        q = "" if value.get("q") is None else f" q={value['q']}"
        return f"the {value['reduction']}{q}{which} of its input"
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _grid(fp: dict[str, Any]) -> str:
    grid = fp.get("grid", {})
    return f"tiles of {' x '.join(map(str, grid.get('tile', [])))} over " \
           f"{' x '.join(map(str, grid.get('shape', [])))}"


def _output(fp: dict[str, Any]) -> str:
    out = fp.get("output", {})
    settings = "".join(f" {k}={json.dumps(v)}" for k, v in out.get("settings", {}).items())
    return f"{out.get('format')} {out.get('dtype')} chunks {out.get('chunks')}{settings}"
