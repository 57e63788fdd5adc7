"""MAD anomaly detection for the InfluxDB 3 Processing Engine (data-writes trigger).

A single file for servers older than InfluxDB 3.6.0, which run only single-file plugins; from
3.6.0 on, deploy the ``madcheck`` package directory itself with ``--path madcheck`` instead (see
README). Deploy with ``--trigger-spec all_tables`` (or ``table:NAME``). The logic lives in the
``madcheck`` package, installed into the engine's Python with ``influxdb3 install package
<wheel>``: the engine runs this file in fresh globals on every call and cannot import files
beside it.
"""


def process_writes(influxdb3_local, table_batches, args=None):  # type: ignore[no-untyped-def]
    try:
        from madcheck.plugin.writes import process_writes as run
    except ImportError as error:
        missing = (error.name or "madcheck").split(".")[0]
        package = "<path of the madcheck wheel>" if missing == "madcheck" else missing
        influxdb3_local.error(
            f"mad_check: the {missing} package is not installed in the engine's Python; "
            f"run: influxdb3 install package {package}"
        )
        return
    run(influxdb3_local, table_batches, args)
