"""The registry of built-in ops: name -> function, parameter schema and halo rule."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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
    """Register a function as a built-in op under its own name."""
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        BUILTINS[func.__name__] = Builtin(func.__name__, func, halo)
        return func

    return register
