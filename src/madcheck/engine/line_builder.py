"""``LineBuilder``: the line protocol builder the engine injects into a plugin's builtins.

It follows InfluxDB 3's own class (``influxdb3_py_api``, ``line_builder.py``) rule for rule, so a
plugin that works here works there and one that fails there fails here:

- raises ``InvalidMeasurementError`` for a measurement containing a space;
- raises ``InvalidKeyError`` for an empty tag or field key or one containing a space, a comma or
  ``=``;
- raises ``ValueError`` for a negative ``uint64_field``;
- raises ``InvalidLineError`` from ``build()`` when the line has no field;
- converts nothing: a value of the wrong type fails the way the real one's Python fails
  (``string_field`` of a non-``str``, ``float64_field`` of a non-number) or ends up in the line as
  written (``int64_field(k, 1.5)`` gives ``k=1.5i``).

Everything else is accepted *by the builder*: an empty measurement or tag value, ``float64_field``
of inf or NaN (it writes ``inf``/``nan``), an int outside int64. Such a line is then rejected when
the engine applies the call's writes, and since that happens with ``accept_partial=false`` it takes
every other line of the call for that database with it (see ``ProcessingEngine``).
"""

from __future__ import annotations

from typing import Any


class InfluxDBError(Exception):
    """Base of the builder's own errors (the engine's class of the same name)."""


class InvalidMeasurementError(InfluxDBError):
    """The measurement name is not allowed (it contains a space)."""


class InvalidKeyError(InfluxDBError):
    """A tag or field key is empty or contains a space, a comma or ``=``."""


class InvalidLineError(InfluxDBError):
    """The line cannot be built (it has no field)."""


def _validate_key(key: str, key_type: str) -> None:
    if not key:
        raise InvalidKeyError(f"{key_type} key cannot be empty")
    if " " in key:
        raise InvalidKeyError(f"{key_type} key '{key}' cannot contain spaces")
    if "," in key:
        raise InvalidKeyError(f"{key_type} key '{key}' cannot contain commas")
    if "=" in key:
        raise InvalidKeyError(f"{key_type} key '{key}' cannot contain equals signs")


def _escape_measurement(value: str) -> str:
    return value.replace(",", "\\,").replace(" ", "\\ ")


def _escape_tag_value_or_field_key(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


class LineBuilder:
    """Builds one line of line protocol for ``influxdb3_local.write``."""

    def __init__(self, measurement: str) -> None:
        if " " in measurement:
            raise InvalidMeasurementError("Measurement name cannot contain spaces")
        self.measurement = measurement
        self.tags: dict[str, str] = {}
        self.fields: dict[str, str] = {}
        self._timestamp_ns: int | None = None

    def tag(self, key: str, value: Any) -> LineBuilder:
        _validate_key(key, "tag")
        self.tags[key] = str(value)
        return self

    def uint64_field(self, key: str, value: int) -> LineBuilder:
        _validate_key(key, "field")
        if value < 0:
            raise ValueError(f"uint64 field '{key}' cannot be negative")
        self.fields[key] = f"{value}u"
        return self

    def int64_field(self, key: str, value: int) -> LineBuilder:
        _validate_key(key, "field")
        self.fields[key] = f"{value}i"
        return self

    def float64_field(self, key: str, value: float) -> LineBuilder:
        _validate_key(key, "field")
        # the engine's own formatting: whole numbers as "N.0", others (inf, nan too) as str()
        self.fields[key] = f"{int(value)}.0" if value % 1 == 0 else str(value)
        return self

    def string_field(self, key: str, value: str) -> LineBuilder:
        _validate_key(key, "field")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        self.fields[key] = f'"{escaped}"'
        return self

    def bool_field(self, key: str, value: bool) -> LineBuilder:
        _validate_key(key, "field")
        self.fields[key] = "t" if value else "f"
        return self

    def time_ns(self, time_ns: int) -> LineBuilder:
        self._timestamp_ns = time_ns
        return self

    def build(self) -> str:
        line = _escape_measurement(self.measurement)
        if self.tags:
            line += "," + ",".join(
                f"{key}={_escape_tag_value_or_field_key(value)}" for key, value in self.tags.items()
            )
        if not self.fields:
            raise InvalidLineError(f"At least one field is required: {line}")
        line += " " + ",".join(
            f"{_escape_tag_value_or_field_key(key)}={value}" for key, value in self.fields.items()
        )
        if self._timestamp_ns is not None:
            line += f" {self._timestamp_ns}"
        return line
