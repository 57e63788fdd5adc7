"""MAD anomaly detection for the InfluxDB 3 Processing Engine.

A single file for servers older than InfluxDB 3.6.0, which run only single-file plugins; from
3.6.0 on, deploy the ``madcheck`` package directory itself with ``--path madcheck`` instead (see
README). Deploy with ``--trigger-spec all_tables`` (or ``table:NAME``) for outlier alerts
(``process_writes``), and with ``--trigger-spec every:1m`` (or ``cron:...``) and ``missing_after``
for missing-data alerts (``process_scheduled_call``); one set of arguments serves both. The logic
lives in the ``madcheck`` package, installed into the engine's Python with ``influxdb3 install
package <wheel>``: the engine runs this file in fresh globals on every call and cannot import
files beside it.
"""

from typing import Any


def _not_installed(influxdb3_local: Any, error: ImportError) -> None:
    missing = (error.name or "madcheck").split(".")[0]
    package = "<path of the madcheck wheel>" if missing == "madcheck" else missing
    influxdb3_local.error(
        f"mad_check: the {missing} package is not installed in the engine's Python; "
        f"run: influxdb3 install package {package}"
    )


def process_writes(influxdb3_local, table_batches, args=None):  # type: ignore[no-untyped-def]
    try:
        from madcheck.plugin.writes import process_writes as run
    except ImportError as error:
        _not_installed(influxdb3_local, error)
        return
    run(influxdb3_local, table_batches, args)


def process_scheduled_call(influxdb3_local, call_time, args=None):  # type: ignore[no-untyped-def]
    try:
        from madcheck.plugin.missing import process_scheduled_call as run
    except ImportError as error:
        _not_installed(influxdb3_local, error)
        return
    run(influxdb3_local, call_time, args)
