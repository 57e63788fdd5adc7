"""madcheck: streaming MAD anomaly detection and alerting for InfluxDB 3.

This package directory is also the plugin. Copied (or ``--upload``-ed) into an InfluxDB 3 plugin
dir, ``influxdb3 create trigger --path madcheck`` imports it as a package named after the
directory and calls the entry points below: ``process_writes`` for the MAD check (``all_tables``
or ``table:NAME``), ``process_scheduled_call`` for its missing-data check (``every:1m`` or
``cron:...``) and ``process_request`` for the notifier (``request:notify``). Nothing beyond
``requests`` and the standard library needs to be installed for them.

The entry points import their modules when first called, so ``import madcheck`` stays light: the
engine imports the package before knowing which entry point a trigger wants, and the command line
and the local engine never pay for the plugin code they do not run.

The package is laid out the way data flows through it:

* ``madcheck.config``  trigger arguments, TOML and environment -> one validated config
* ``madcheck.detect``  rolling median/MAD windows and the count, duration and flip rules
* ``madcheck.notify``  delivery of alerts to the notifier endpoint and the channel senders
* ``madcheck.plugin``  the thin adapters the Processing Engine calls
* ``madcheck.engine``  a local stand-in for the parts of InfluxDB 3 the plugins use
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

NOT_IMPORTED = (
    "the engine ran madcheck/__init__.py on its own instead of importing the madcheck package "
    "(influxdb3 test wal_plugin and test schedule_plugin do that with a directory plugin) and "
    "no madcheck package is loaded: create the triggers with --path madcheck, or try the plugin "
    "with `madcheck test wal_plugin` or `madcheck test schedule_plugin`"
)


def process_writes(
    influxdb3_local: Any,
    table_batches: Any,
    args: Any = None,
    *,
    plugin_dir: Path | None = None,
) -> None:
    """The MAD check (data-writes trigger).

    ``config_file_path`` is resolved against ``PLUGIN_DIR`` when set (InfluxDB 3 never sets it),
    else against ``plugin_dir``, which defaults to the directory this package was loaded from:
    the engine's plugin dir when the package is deployed as a directory plugin.
    """
    run = _entry_point(influxdb3_local, "madcheck.plugin.writes", "process_writes", "mad_check")
    if run is not None:
        run(influxdb3_local, table_batches, args, plugin_dir=plugin_dir or loaded_from())


def process_scheduled_call(
    influxdb3_local: Any,
    call_time: Any,
    args: Any = None,
    *,
    plugin_dir: Path | None = None,
) -> None:
    """The MAD check's missing-data alerts (scheduled trigger, e.g. ``every:1m``, with
    ``missing_after``); ``config_file_path`` is resolved as for ``process_writes``."""
    run = _entry_point(
        influxdb3_local, "madcheck.plugin.missing", "process_scheduled_call", "mad_check"
    )
    if run is not None:
        run(influxdb3_local, call_time, args, plugin_dir=plugin_dir or loaded_from())


def process_request(
    influxdb3_local: Any,
    query_parameters: Any,
    request_headers: Any,
    request_body: Any,
    args: Any = None,
) -> Any:
    """The notification sender (request trigger, e.g. ``request:notify``)."""
    handle = _entry_point(
        influxdb3_local, "madcheck.plugin.notifier", "process_request", "notifier"
    )
    if handle is None:
        return {"status": "failed", "error": NOT_IMPORTED, "results": {}}, 500
    return handle(influxdb3_local, query_parameters, request_headers, request_body, args)


#: entry points imported so far, by module: the engine imports the package once and calls an
#: entry point on every flush, so only the first call of each pays for the import machinery
_IMPORTED: dict[str, Any] = {}


def _entry_point(influxdb3_local: Any, module: str, function: str, label: str) -> Any:
    """``module.function``, imported at its first call; None, after logging why, when the
    engine ran this file on its own, without the package around it (``NOT_IMPORTED``)."""
    found = _IMPORTED.get(module)
    if found is None:
        try:
            found = _IMPORTED[module] = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != "madcheck":
                raise
            influxdb3_local.error(f"{label}: {NOT_IMPORTED}")
            return None
    return getattr(found, function)


def loaded_from() -> Path | None:
    """The directory holding this package: the plugin dir when deployed as a directory plugin.

    ``None`` when this file was run on its own rather than imported (no ``__file__``).
    """
    origin = globals().get("__file__")
    if not origin:
        return None
    if os.path.isabs(origin):  # the usual case: the same answer on every call
        return _parent_of_package(origin)
    return Path(origin).absolute().parent.parent


@functools.lru_cache(maxsize=4)
def _parent_of_package(origin: str) -> Path:
    return Path(origin).parent.parent
