"""The registry of built-in ops: name -> function, parameter schema and halo rule."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError


@dataclass(frozen=True)
class Builtin:
    """A built-in op: a Python function of image(s) and keyword-only parameters."""

    name: str
    func: Callable[..., Any]
    #: How the op's margin follows from its parameters, for people (`tilewise ops`).
    halo: str

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.func) or "").split("\n\n")[0].replace("\n", " ")

    @property
    def inputs(self) -> int:
        """How many images the op takes, before its keyword-only parameters."""
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return sum(p.kind in kinds for p in inspect.signature(self.func).parameters.values())

    @property
    def params(self) -> dict[str, tuple[Any, Any]]:
        """Each keyword-only parameter's type hint and default (`inspect.Parameter.empty`)."""
        hints = typing.get_type_hints(self.func)
        return {name: (hints[name], p.default)
                for name, p in inspect.signature(self.func).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}


BUILTINS: dict[str, Builtin] = {}


def builtin(halo: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as a built-in op under its own name; a misspelled or missing
    parameter is a `ParameterError` naming the op and its parameters, as in pipeline files."""
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def checked(*images: Any, **params: Any) -> Any:
            try:
                signature.bind(*images, **params)
            except TypeError as exc:
                entry = BUILTINS[func.__name__]
                unknown = [k for k in params if k not in entry.params]
                missing = [k for k, (_, default) in entry.params.items()
                           if default is inspect.Parameter.empty and k not in params]
                problem = (f"has no parameter {unknown[0]!r}" if unknown else
                           f"takes {entry.inputs} image(s), not {len(images)}"
                           if len(images) != entry.inputs else
                           f"needs the parameter {missing[0]!r}" if missing else str(exc))
                raise ParameterError(f"op {func.__name__!r} {problem}; its parameters are "
                                     f"{', '.join(entry.params) or 'none'}") from None
            return func(*images, **params)

        BUILTINS[func.__name__] = Builtin(func.__name__, checked, halo)
        return checked

    return register
