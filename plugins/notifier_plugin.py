"""Notification Sender plugin for the InfluxDB 3 Processing Engine (``request:notify``).

A single file for servers older than InfluxDB 3.6.0; from 3.6.0 on, deploy the ``madcheck``
package directory with ``--path madcheck`` instead (see README). Copy this file into the plugin
directory and install the logic it delegates to with ``influxdb3 install package <path of the
madcheck wheel>``. The engine runs this file afresh on every request, so the import happens
inside the function, where a missing package becomes a clear answer.
"""

from typing import Any


def process_request(
    influxdb3_local: Any,
    query_parameters: Any,
    request_headers: Any,
    request_body: Any,
    args: Any = None,
) -> Any:
    try:
        from madcheck.plugin.notifier import process_request as handle_request
    except ImportError as error:
        missing = (error.name or "madcheck").split(".")[0]
        package = "<path of the madcheck wheel>" if missing == "madcheck" else missing
        hint = (
            f"the {missing} package is not installed in the Processing Engine's Python "
            f"environment: run `influxdb3 install package {package}`"
        )
        influxdb3_local.error(f"notifier: {hint}")
        return {"status": "failed", "error": hint, "results": {}}, 500
    return handle_request(influxdb3_local, query_parameters, request_headers, request_body, args)
