"""A straightforward MAD plugin: the yardstick ``bench_process_writes.py`` measures against.

It is what one writes first from the seed's description, and it is correct: every point copies
and sorts its window (``statistics.median``, twice: the median, then the median of the
deviations), and every row reads and writes its window and its run counter through
``influxdb3_local.cache``. It understands only what the benchmark uses (count thresholds, one
table) and logs instead of notifying. It is not part of the package and not for production.
"""

import math
import statistics


def window_key(measurement, series, field, window_count):  # type: ignore[no-untyped-def]
    """The cache key of one series' window (the benchmark fills windows through it)."""
    return f"window:{measurement}:{series}:{field}:{window_count}"


def process_writes(influxdb3_local, table_batches, args=None):  # type: ignore[no-untyped-def]
    cache = influxdb3_local.cache
    measurement = args["measurement"]
    thresholds = []
    for condition in args["mad_thresholds"].split("@"):
        field, k, window_count, count = condition.split(":")
        thresholds.append((field, float(k), int(window_count), int(count)))

    tags = cache.get("tags:" + measurement)
    if tags is None:
        columns = influxdb3_local.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = $table",
            {"table": measurement},
        )
        tags = sorted(c["column_name"] for c in columns if c["data_type"].startswith("Dictionary"))
        cache.put("tags:" + measurement, tags, ttl=3600)

    for batch in table_batches:
        if batch["table_name"] != measurement:
            continue
        for row in sorted(batch["rows"], key=lambda r: r["time"]):
            series = ",".join(f"{tag}={row[tag]}" for tag in tags if tag in row)
            for field, k, window_count, count in thresholds:
                key = window_key(measurement, series, field, window_count)
                run_key = f"run:{key}:{k}:{count}"
                value = row.get(field)
                numeric = isinstance(value, int | float) and not isinstance(value, bool)
                if not numeric or not math.isfinite(value):
                    cache.put(run_key, 0)
                    continue
                window = cache.get(key, [])
                window.append(float(value))
                window = window[-window_count:]
                cache.put(key, window)
                if len(window) < window_count:
                    continue
                median = statistics.median(window)
                mad = statistics.median([abs(x - median) for x in window])
                outlier = value < median - k * mad or value > median + k * mad
                run = cache.get(run_key, 0) + 1 if outlier else 0
                if run >= count:
                    influxdb3_local.info(f"alert: {field} of {series} at {row['time']}")
                    run = 0
                cache.put(run_key, run)
