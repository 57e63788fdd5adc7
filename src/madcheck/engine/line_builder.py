"""``LineBuilder``: the line protocol builder the engine injects into a plugin's builtins.

It mirrors the engine's own class: a measurement, tags, typed fields and an optional time, with
``build()`` giving one line of line protocol. Validation happens as values are added, so a plugin
learns of a bad name where it made the mistake rather than when the engine applies the write.
"""

from __future__ import annotations

import math

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1


def _escape_string_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LineBuilder:
    """Builds one line of line protocol for ``influxdb3_local.write``."""

    def __init__(self, measurement: str) -> None:
        if not isinstance(measurement, str) or not measurement:
            raise ValueError("measurement must be a non-empty string")
        self.measurement = measurement
        self.tags: dict[str, str] = {}
        self.fields: dict[str, str] = {}
        self._time_ns: int | None = None

    def tag(self, key: str, value: str) -> LineBuilder:
        if not key:
            raise ValueError("tag key must not be empty")
        value = str(value)
        if not value:
            raise ValueError(f"tag {key!r} must not have an empty value")
        self.tags[key] = value
        return self

    def int64_field(self, key: str, value: int) -> LineBuilder:
        value = int(value)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"int64 field {key!r} out of range: {value}")
        return self._field(key, f"{value}i")

    def uint64_field(self, key: str, value: int) -> LineBuilder:
        value = int(value)
        if not 0 <= value <= _UINT64_MAX:
            raise ValueError(f"uint64 field {key!r} out of range: {value}")
        return self._field(key, f"{value}u")

    def float64_field(self, key: str, value: float) -> LineBuilder:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"float64 field {key!r} must be finite")
        return self._field(key, repr(value))

    def string_field(self, key: str, value: str) -> LineBuilder:
        return self._field(key, _escape_string_field(str(value)))

    def bool_field(self, key: str, value: bool) -> LineBuilder:
        return self._field(key, "true" if value else "false")

    def time_ns(self, time_ns: int) -> LineBuilder:
        self._time_ns = int(time_ns)
        return self

    def _field(self, key: str, encoded: str) -> LineBuilder:
        if not key:
            raise ValueError("field key must not be empty")
        self.fields[key] = encoded
        return self

    def build(self) -> str:
        if not self.fields:
            raise ValueError(f"line for {self.measurement!r} has no fields")
        head = self.measurement.translate(_MEASUREMENT_ESCAPES)
        for key in sorted(self.tags):
            head += f",{key.translate(_KEY_ESCAPES)}={self.tags[key].translate(_KEY_ESCAPES)}"
        fields = ",".join(f"{k.translate(_KEY_ESCAPES)}={v}" for k, v in self.fields.items())
        line = f"{head} {fields}"
        if self._time_ns is not None:
            line += f" {self._time_ns}"
        return line
