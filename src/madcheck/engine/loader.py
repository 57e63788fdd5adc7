"""Load plugins the way the Processing Engine does.

A single-file plugin is executed on every call in a fresh, empty globals dict: module globals do
not survive between calls, ``__file__`` is unset, and the plugin's folder is not importable. A
folder with ``__init__.py`` is imported once as a real package and cached in ``sys.modules``.
Running plugins through this module is what lets the tests catch code that only works when
imported normally.
"""

from __future__ import annotations

import builtins
import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import Any

from madcheck.engine.line_builder import LineBuilder

PluginFunction = Callable[..., Any]


def install_builtins() -> None:
    """Make ``LineBuilder`` a builtin, as the engine does before running any plugin."""
    builtins.LineBuilder = LineBuilder  # type: ignore[attr-defined]


def load_entry_point(plugin_path: Path, function_name: str) -> PluginFunction:
    """Return the plugin's ``function_name``, loaded as the engine would load it for one call.

    Raises ``LookupError`` when the plugin does not define the function, ``SyntaxError`` and
    friends when its source does not run.
    """
    install_builtins()
    if plugin_path.is_dir():
        namespace = _import_package(plugin_path).__dict__
    else:
        source = plugin_path.read_text(encoding="utf-8")
        namespace = {"__builtins__": builtins}
        exec(_compiled(source, plugin_path.name), namespace)
    function: PluginFunction | None = namespace.get(function_name)
    if not callable(function):
        raise LookupError(f"plugin {plugin_path.name} does not define {function_name}()")
    return function


@functools.lru_cache(maxsize=64)
def _compiled(source: str, file_name: str) -> CodeType:
    """The plugin's code, compiled once per distinct source text.

    Executing is what gives the fresh globals; compiling the same text again on every call only
    cost time (a replay calls the plugin once per flush, hundreds of thousands of times). The
    file is still read on every call, so an edit takes effect at the next call, as in the engine.
    """
    return compile(source, file_name, "exec")


def _import_package(folder: Path) -> Any:
    module_name = f"influxdb3_plugin_{folder.name}"
    cached = sys.modules.get(module_name)
    if cached is not None:
        return cached
    spec = importlib.util.spec_from_file_location(
        module_name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import plugin package {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
