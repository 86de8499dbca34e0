"""Lazy package exports: names that import their module on first use.

A package ``__init__`` lists its public names and the modules that define
them, so that importing the package loads no models (it may be imported
while Django is still loading apps). Each ``__init__`` also imports the
names under ``TYPE_CHECKING``, so type checkers and IDEs see them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``__getattr__`` and ``__dir__`` for ``package``, exporting ``exports``.

    ``exports`` maps each public name to the dotted module that defines it.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
