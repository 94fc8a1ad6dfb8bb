"""Every node type owns its fingerprint: any change that alters pixels refuses a resume."""

import ast
import pathlib
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

import tilewise as tw
from tilewise.graph import Node

BASE = np.arange(48 * 40, dtype="float64").reshape(48, 40)


def scaled(a, *, k=1.0, step=1):
    return a[::step, ::step] * k


def pipeline(source, **changes):
    """One op of every kind of knob, each changeable by name."""
    knobs = dict(k=1.0, margin=1, dtype="float64", factor=1, rows=slice(0, 40))
    knobs.update(changes)
    img = tw.open(source)[knobs["rows"]]
    return tw.map(scaled, img, margin=knobs["margin"], dtype=knobs["dtype"],
                  factor=knobs["factor"], k=knobs["k"], step=knobs["factor"], name="scaled")


def half_finished(tmp_path):
    """An output whose first run failed after some tiles: a resume is possible."""
    np.save(tmp_path / "in.npy", BASE)
    out = tmp_path / "o.zarr"
    stop = []

    def progress(p):
        if p.done == 2:
            stop.append(p)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tw.save(pipeline(tmp_path / "in.npy"), out, tile=8, progress=progress, workers=1)
    return out


@pytest.mark.parametrize("change, message", [
    ({"k": 2.0}, r"parameter 'k' of op 'scaled' changed from 1\.0 to 2\.0"),
    ({"margin": 2}, r"the margin of op 'scaled' changed from \[1, 1\] to \[2, 2\]"),
    ({"dtype": "float32"}, r"the dtypes of op 'scaled' changed"),
    ({"factor": 2, "margin": 0}, r"the maps of op 'scaled' changed from null to "),
    ({"rows": slice(1, 41)}, r"the steps changed from input .*slice '\[0:40, 0:40\]' -> "
                             r"scaled to .*slice '\[1:41, 0:40\]' -> scaled"),
])
def test_a_changed_node_refuses_the_resume_and_names_the_change(tmp_path, change, message):
    out = half_finished(tmp_path)
    with pytest.raises(tw.OutputExistsError, match=message):
        tw.save(pipeline(tmp_path / "in.npy", **change), out, tile=8)


def test_a_changed_input_refuses_the_resume(tmp_path):
    out = half_finished(tmp_path)
    np.save(tmp_path / "in.npy", BASE + 1)
    with pytest.raises(tw.OutputExistsError, match=r"input .*in\.npy changed \(.*check"):
        tw.save(pipeline(tmp_path / "in.npy"), out, tile=8)


def test_an_unchanged_pipeline_resumes(tmp_path):
    out = half_finished(tmp_path)
    report = tw.save(pipeline(tmp_path / "in.npy"), out, tile=8)
    assert report.resumed == 2
    np.testing.assert_array_equal(tw.open(out).compute(), BASE[:40])


def test_an_in_memory_input_is_fingerprinted_by_content(tmp_path):
    a = BASE.copy()
    first = tw.open(a).node.fingerprint()
    a[3, 3] += 1
    assert tw.open(a).node.fingerprint() != first
    assert tw.open(a).node.fingerprint() == tw.open(a.copy()).node.fingerprint()


def test_a_node_type_must_say_what_identifies_it():
    @dataclass(frozen=True, eq=False)
    class Silent(Node):
        def grid(self, index):
            return (1,), ("x",)

        def dtype(self, index):
            return np.dtype("uint8")

        def blocks(self, index):
            return (1,)

        def meta(self, index):
            return {}

        def evaluate(self, region, arrays, index):
            return (np.zeros(1, "uint8"),)

    with pytest.raises(TypeError, match="fingerprint"):
        Silent(())


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, from every import statement (at module
    level and inside functions)."""
    root = pathlib.Path(tw.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = (path, parts[-1] == "__init__")
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, package) in modules.items():
        base = name if package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                anchor = base
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                stem = (anchor + "." + node.module if node.module else anchor) \
                    if node.level else node.module
                # `from . import meta` needs the module meta; `from .graph import Image` needs
                # graph; `from . import compute` would need the package itself.
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem
                           for a in node.names]
            else:
                continue
            edges[name] |= {t for t in targets if t in modules and t != name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for nxt in sorted(edges[name]):
            if state.get(nxt) == 1:
                return [*path, name, nxt]
            found = visit(nxt, [*path, name]) if nxt not in state else None
            if found:
                return found
        state[name] = 2
        return None

    for name in sorted(edges):
        found = visit(name, []) if name not in state else None
        if found:
            return found
    return None


def test_the_package_imports_no_module_in_a_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    done = subprocess.run([sys.executable, "-c", "import tilewise"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
