"""Pipeline files: YAML naming inputs, steps and outputs, checked whole before any work.

    inputs:
      dem: dem/srtm90.tif                  # a path, relative to this file
      scene: {dataset: landsat}            # or a demo dataset; {path: ..., axes: cyx} also works
      sky: {path: hst_flt.fits, options: {hdu: SCI}}   # a format's options (format: names one)
    steps:
      smooth: {op: gaussian, input: dem, params: {sigma: 1.5}}
      edges:
        function: mypackage.filters:edges  # a user function, by import path
        margin: 2                          # required: the pixels of neighbourhood it reads
        dtype: float32                     # optional: its output dtype (default: the input's)
        inputs: [smooth]
        params: {threshold: 10}
    outputs:
      smooth: out/smooth.tif               # or {path: out/smooth.tif, cmap: terrain}
      edges: out/edges.zarr
    run: {memory: 1GiB, executor: threads, workers: 2, tile: 1024, on_error: stop}
    # or on a dask cluster: run: {executor: dask, scheduler: "tcp://scheduler:8786"}

Every mistake is reported as one sentence naming the file, the line and the key path
(`steps.smooth.params.sigma`); a mistake found while building the graph keeps its own
exception class (an `InputError` for a missing input file) and gains the location.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import grids
from .errors import GridMismatchError, OutputExistsError, PipelineFileError, TilewiseError
from .graph import Image
from .io.location import is_local
from .ops import Op
from .ops import open as open_image

TOP = ("inputs", "steps", "outputs", "run")
INPUT_KEYS = ("path", "dataset", "axes", "format", "options")
STEP_KEYS = ("op", "function", "input", "inputs", "params", "margin", "dtype")
OUTPUT_KEYS = ("path", "cmap")
RUN_KEYS = ("executor", "workers", "memory", "tile", "on_error", "scheduler")

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Output:
    name: str
    path: str
    cmap: str | None = None


@dataclass(frozen=True)
class Spec:
    """A checked pipeline file: the images to save, where, and the file's run options."""

    path: str
    images: tuple[Image, ...]
    outputs: tuple[Output, ...]
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        return [o.path for o in self.outputs]


def load(path: str | os.PathLike[str]) -> Spec:
    """Read, check and build a pipeline file."""
    path = os.fspath(path)
    doc = _Document.read(path)
    return doc.build()


def dotted(keys: KeyPath) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".")


@dataclass
class _Document:
    path: str
    data: Any
    lines: dict[KeyPath, int]
    images: dict[str, Image] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str) -> _Document:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise PipelineFileError(f"pipeline file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PipelineFileError(f"pipeline file {path} cannot be read: {exc}") from None
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise PipelineFileError(f"{path}{where}: not valid YAML: {problem}") from None
        finally:
            loader.dispose()
        doc = cls(path, data, {})
        if node is not None:
            doc._index(node, ())
        return doc

    def _index(self, node: yaml.Node, keys: KeyPath) -> None:
        """Record the line of every key, and refuse keys given twice (YAML keeps the last)."""
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*keys, key_node.value)
                if key in self.lines:
                    raise self.error(key, "is given twice", line=key_node.start_mark.line + 1)
                self.lines[key] = key_node.start_mark.line + 1
                self._index(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines[(*keys, i)] = item.start_mark.line + 1
                self._index(item, (*keys, i))

    def error(self, keys: KeyPath, message: str, cls: type[TilewiseError] = PipelineFileError,
              line: int | None = None) -> TilewiseError:
        probe = keys
        while line is None and probe:
            line = self.lines.get(probe)
            probe = probe[:-1]
        where = f"{self.path} line {line}" if line else self.path
        located = cls(f"{where}: {dotted(keys) or 'the file'}: {message}")
        located.located = True  # type: ignore[attr-defined]
        return located

    def mapping(self, value: Any, keys: KeyPath, allowed: tuple[str, ...] | None = None
                ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(keys, f"must be a mapping of names to values, not {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.error(keys, f"has a key {key!r} that is not a name")
            if allowed is not None and key not in allowed:
                raise self.error((*keys, key), f"is not a known key here; use {_choices(allowed)}")
        return value

    def resolve(self, path: Any, keys: KeyPath) -> str:
        if not isinstance(path, str) or not path:
            raise self.error(keys, f"must be a file path, not {_kind(path)}")
        path = os.path.expanduser(os.path.expandvars(path))
        if not is_local(path):  # a URL (s3://bucket/key) or a GDAL virtual path
            return path
        folder = os.path.dirname(os.path.abspath(self.path))
        return os.path.normpath(os.path.join(folder, path))

    def build(self) -> Spec:
        top = self.mapping(self.data, (), TOP)
        for required in ("inputs", "outputs"):
            if required not in top:
                raise self.error((), f"has no {required!r} section")
        inputs = self.mapping(top["inputs"], ("inputs",))
        steps = self.mapping(top.get("steps") or {}, ("steps",))
        outputs = self.mapping(top["outputs"], ("outputs",))
        if not outputs:
            raise self.error(("outputs",), "names no output")
        for name in steps:
            if name in inputs:
                raise self.error(("steps", name), "is also the name of an input")
        options = self._options(top.get("run") or {})
        input_paths = {}
        for name, value in inputs.items():
            self.images[name], source = self._input(name, value)
            if source:
                input_paths[os.path.realpath(source)] = name
        self._import_paths()
        for name in steps:
            self._step(name, steps, ())
        built = []
        for name, value in outputs.items():
            built.append(self._output(name, value, input_paths))
        try:
            grids.of([self.images[o.name] for o in built], [o.name for o in built])
        except GridMismatchError as exc:
            raise self.error(("outputs",), str(exc), GridMismatchError) from None
        return Spec(self.path, tuple(self.images[o.name] for o in built), tuple(built), options)

    def _options(self, value: Any) -> dict[str, Any]:
        run = self.mapping(value, ("run",), RUN_KEYS)
        checks = {"executor": str, "workers": int, "memory": (str, int), "tile": (int, dict, list),
                  "on_error": str, "scheduler": str}
        for key, kind in checks.items():
            if key in run and (isinstance(run[key], bool) or not isinstance(run[key], kind)):
                raise self.error(("run", key), f"has the wrong type: {_kind(run[key])}")
        return dict(run)

    def _input(self, name: str, value: Any) -> tuple[Image, str | None]:
        keys = ("inputs", name)
        if isinstance(value, str):
            value = {"path": value}
        spec = self.mapping(value, keys, INPUT_KEYS)
        if ("path" in spec) == ("dataset" in spec):
            raise self.error(keys, "needs exactly one of 'path' or 'dataset'")
        try:
            if "dataset" in spec:
                from . import datasets

                source = datasets.path(spec["dataset"])
            else:
                source = self.resolve(spec["path"], (*keys, "path"))
            options = self.mapping(spec.get("options") or {}, (*keys, "options"))
            return open_image(source, axes=spec.get("axes"), format=spec.get("format"),
                              **options), source
        except TilewiseError as exc:
            raise self.error(keys, str(exc), type(exc)) from None

    def _import_paths(self) -> None:
        """User functions may live beside the pipeline file or in the working directory."""
        for folder in (os.getcwd(), os.path.dirname(os.path.abspath(self.path))):
            if folder not in sys.path:
                sys.path.insert(0, folder)

    def _step(self, name: str, steps: dict[str, Any], chain: tuple[str, ...]) -> Image:
        if name in self.images:
            return self.images[name]
        keys = ("steps", name)
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name):], name))
            raise self.error(keys, f"is part of a cycle: {cycle}")
        spec = self.mapping(steps[name], keys, STEP_KEYS)
        if ("op" in spec) == ("function" in spec):
            raise self.error(keys, "needs exactly one of 'op' (a built-in) or 'function' "
                                   "(a user function as package.module:function)")
        refs, ref_keys = self._references(spec, keys)
        images = []
        for ref, ref_key in zip(refs, ref_keys, strict=True):
            if ref not in self.images and ref not in steps:
                known = [*self.images, *steps]
                raise self.error(ref_key, f"names {ref!r}, which is neither an input nor a step; "
                                          f"known: {', '.join(map(str, known))}")
            images.append(self.images[ref] if ref in self.images
                          else self._step(ref, steps, (*chain, name)))
        params = self.mapping(spec.get("params") or {}, (*keys, "params"))
        try:
            if "op" in spec:
                image = self._builtin(spec, keys, images, params)
            else:
                image = self._function(spec, keys, name, images, params)
        except TilewiseError as exc:
            if getattr(exc, "located", False):  # already names its key path and line
                raise
            raise self.error(keys, str(exc), type(exc)) from None
        self.images[name] = image
        return image

    def _references(self, spec: dict[str, Any], keys: KeyPath
                    ) -> tuple[list[Any], list[KeyPath]]:
        if ("input" in spec) == ("inputs" in spec):
            raise self.error(keys, "needs exactly one of 'input' (a name) or 'inputs' (a list)")
        if "input" in spec:
            return [spec["input"]], [(*keys, "input")]
        refs = spec["inputs"]
        if not isinstance(refs, list) or not refs:
            raise self.error((*keys, "inputs"), "must be a non-empty list of names")
        return refs, [(*keys, "inputs", i) for i in range(len(refs))]

    def _builtin(self, spec: dict[str, Any], keys: KeyPath, images: list[Image],
                 params: dict[str, Any]) -> Image:
        from .library import BUILTINS

        name = spec["op"]
        if name not in BUILTINS:
            raise self.error((*keys, "op"), f"{name!r} is not a built-in op; `tilewise ops` lists "
                                            f"them: {', '.join(sorted(BUILTINS))}")
        for key in ("margin", "dtype"):
            if key in spec:
                raise self.error((*keys, key), f"is not allowed for the built-in op {name!r}, "
                                               "which knows its own margin and dtype")
        op = BUILTINS[name]
        if len(images) != op.inputs:
            raise self.error(keys, f"op {name!r} takes {op.inputs} input(s), not {len(images)}")
        schema = op.params
        for key in params:
            if key not in schema:
                raise self.error((*keys, "params", key), f"op {name!r} has no parameter {key!r}; "
                                                         f"its parameters are {_choices(schema)}")
        checked = {}
        for key, (hint, default) in schema.items():
            if key in params:
                checked[key] = self._typed(params[key], hint, (*keys, "params", key))
            elif default is inspect.Parameter.empty:
                raise self.error((*keys, "params"), f"op {name!r} needs the parameter {key!r}")
        return op.func(*images, **checked)

    def _typed(self, value: Any, hint: Any, keys: KeyPath) -> Any:
        """`value` checked (and converted: lists to tuples, ints to floats) against the type
        hint of a built-in op's parameter."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is typing.Literal:
            if value not in args:
                raise self.error(keys, f"must be one of {_choices(args)}, not {value!r}")
            return value
        if origin in (typing.Union, types.UnionType):
            return self._union(value, args, keys)
        if origin in (tuple, list):
            return self._sequence(value, origin, args, keys)
        if origin is dict:
            items = self.mapping(value, keys)
            return {k: self._typed(v, args[1], (*keys, k)) for k, v in items.items()}
        if hint is bool:
            ok = isinstance(value, bool)
        else:
            kinds = (int, float) if hint is float else hint
            ok = isinstance(value, kinds) and not isinstance(value, bool)
        if not ok:
            raise self.error(keys, f"must be {_NAMES[hint]}, not {value!r}")
        return float(value) if hint is float else value

    def _union(self, value: Any, args: tuple[Any, ...], keys: KeyPath) -> Any:
        """The first alternative of a union that `value` fits; the last one's error if none."""
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:
            try:
                return self._typed(value, option, keys)
            except PipelineFileError:
                continue
        return self._typed(value, options[-1], keys)

    def _sequence(self, value: Any, origin: Any, args: tuple[Any, ...], keys: KeyPath) -> Any:
        """A list for a `tuple[...]` (fixed or `...` length) or `list[...]` parameter."""
        variable = origin is list or (len(args) == 2 and args[1] is Ellipsis)
        if not isinstance(value, list) or (not variable and len(value) != len(args)):
            count = "a list" if variable else f"a list of {len(args)} values"
            raise self.error(keys, f"must be {count}, not {value!r}")
        kinds = [args[0]] * len(value) if variable else list(args)
        items = [self._typed(v, a, (*keys, i))
                 for i, (v, a) in enumerate(zip(value, kinds, strict=True))]
        return items if origin is list else tuple(items)

    def _function(self, spec: dict[str, Any], keys: KeyPath, name: str, images: list[Image],
                  params: dict[str, Any]) -> Image:
        func = self._import(spec["function"], (*keys, "function"))
        if isinstance(func, Op):
            for key in ("margin", "dtype"):
                if key in spec:
                    raise self.error((*keys, key), f"is already declared by the op "
                                                   f"{spec['function']} itself")
            op = func
        else:
            if "margin" not in spec:
                raise self.error(keys, "needs 'margin': the pixels of neighbourhood the function "
                                       "reads on each side (0 if it reads none)")
            margin = spec["margin"]
            if isinstance(margin, dict):
                margin = self.mapping(margin, (*keys, "margin"))
            op = Op(func, margin=margin, dtype=spec.get("dtype"), name=name)
        result = op(*images, **params)
        if isinstance(result, tuple):
            raise self.error((*keys, "function"), f"gives {len(result)} outputs; pipeline files "
                                                  "take functions with one output")
        return result

    def _import(self, target: Any, keys: KeyPath) -> Any:
        if not isinstance(target, str) or target.count(":") != 1:
            raise self.error(keys, f"must be 'package.module:function', not {target!r}")
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise self.error(keys, f"cannot import module {module_name!r} "
                                   f"({type(exc).__name__}: {exc})") from None
        obj = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise self.error(keys, f"module {module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if not callable(obj):
            raise self.error(keys, f"{target} is not a function")
        return obj

    def _output(self, name: str, value: Any, input_paths: dict[str, str]) -> Output:
        keys = ("outputs", name)
        if name not in self.images:
            raise self.error(keys, f"names {name!r}, which is neither an input nor a step")
        if isinstance(value, str):
            value = {"path": value}
        spec = self.mapping(value, keys, OUTPUT_KEYS)
        if "path" not in spec:
            raise self.error(keys, "needs a 'path'")
        path = self.resolve(spec["path"], (*keys, "path"))
        if os.path.realpath(path) in input_paths:
            raise self.error((*keys, "path"), f"{path} is the input "
                                              f"{input_paths[os.path.realpath(path)]!r}; "
                                              "an output must not replace an input",
                             OutputExistsError)
        from .io import sink_class

        try:
            sink_class(path)
        except TilewiseError as exc:
            raise self.error((*keys, "path"), str(exc), type(exc)) from None
        cmap = spec.get("cmap")
        if cmap is not None and not isinstance(cmap, str):
            raise self.error((*keys, "cmap"), f"must be a colour map name, not {cmap!r}")
        return Output(name, path, cmap)


_NAMES = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if value is not None else "nothing"


def _choices(values: Any) -> str:
    return ", ".join(map(str, values))
