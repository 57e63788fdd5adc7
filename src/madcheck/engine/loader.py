"""Load plugins the way the Processing Engine does.

A single-file plugin is executed on every call in a fresh, empty globals dict: module globals do
not survive between calls, ``__file__`` is unset, and the plugin's folder is not importable. A
folder with ``__init__.py`` is imported once as a real package named after the folder and cached
in ``sys.modules``.
Running plugins through this module is what lets the tests catch code that only works when
imported normally.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import CodeType
from typing import Any

from madcheck.engine.line_builder import LineBuilder

PluginFunction = Callable[..., Any]

#: ``sys.path`` is process-wide: two triggers loading at once must not pop each other's entry
_SYS_PATH_LOCK = threading.Lock()


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
        if not (plugin_path / "__init__.py").is_file():
            raise ImportError(
                f"multi-file plugin directory must contain __init__.py: {plugin_path.name}"
            )
        module = _import_package(plugin_path)
        function = getattr(module, function_name, None)
        if not callable(function):
            raise LookupError(f"plugin {plugin_path.name} does not define {function_name}()")
        return _bind_plugin_dir(module, plugin_path, function)
    source = plugin_path.read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__builtins__": builtins}
    exec(_compiled(source, plugin_path.name), namespace)
    found: PluginFunction | None = namespace.get(function_name)
    if not callable(found):
        raise LookupError(f"plugin {plugin_path.name} does not define {function_name}()")
    return found


@functools.lru_cache(maxsize=64)
def _compiled(source: str, file_name: str) -> CodeType:
    """The plugin's code, compiled once per distinct source text.

    Executing is what gives the fresh globals; compiling the same text again on every call only
    cost time (a replay calls the plugin once per flush, hundreds of thousands of times). The
    file is still read on every call, so an edit takes effect at the next call, as in the engine.
    """
    return compile(source, file_name, "exec")


def _import_package(folder: Path) -> Any:
    """Import ``folder`` as InfluxDB 3 does (``load_function_from_module`` in ``system_py.rs``).

    The module is named after the folder and the folder's parent is put first on ``sys.path``
    only for the import, then popped again: afterwards the package finds its submodules through
    its own ``__path__``, and the plugin dir is not importable by anything else. An already
    imported module of that name is reused, as the engine's ``import`` does; that is also how
    edits to an imported package stay unseen until the server restarts.
    """
    name = folder.name
    with _SYS_PATH_LOCK:
        sys.path.insert(0, str(folder.parent))
        try:
            try:
                return importlib.import_module(name)
            except ModuleNotFoundError as error:
                if error.name != name:
                    raise
                # a folder created after the import system cached its parent's listing
                importlib.invalidate_caches()
                return importlib.import_module(name)
        finally:
            sys.path.pop(0)


def _bind_plugin_dir(module: Any, folder: Path, function: PluginFunction) -> PluginFunction:
    """``function`` told where the plugin dir is, when the module did not come from ``folder``.

    One interpreter holds one module per name: a ``madcheck`` folder in the plugin dir of
    ``madcheck serve`` resolves to the ``madcheck`` package the server itself runs from (the
    real engine would reuse an imported module just the same). Its entry points would then look
    for ``config_file_path`` beside the installed package, so an entry point that takes a
    ``plugin_dir`` keyword is given the folder's parent instead.
    """
    origin = getattr(module, "__file__", None)
    if origin is not None and Path(origin).resolve().parent == folder.resolve():
        return function
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return function
    if "plugin_dir" not in parameters:
        return function
    return functools.partial(function, plugin_dir=folder.parent.absolute())
