"""One validated, typed config for the MAD trigger, built from everything a user can set.

Sources, later ones winning key by key: trigger arguments, then the TOML file named by
``config_file_path`` (inside the plugin directory: ``PLUGIN_DIR``, or the directory plugin's own
folder). The environment fills in secrets that were not given (``INFLUXDB3_AUTH_TOKEN``,
``TWILIO_SID``, ``TWILIO_TOKEN``) and those given as ``env:NAME``. Problems that leave the trigger
usable become warnings; problems that do not become one ``ConfigError`` naming the argument.

The TOML file is a stranger's input too (anyone with a token can create a trigger): its path is
resolved, symlinks included, and must stay inside the plugin directory; it must be a regular
``.toml`` file of at most ``MAX_CONFIG_FILE_BYTES``, and no error or warning repeats its contents
or its keys.
"""

from __future__ import annotations

import difflib
import math
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from madcheck.config.durations import (
    NS_PER_UNIT,
    parse_backoff_range,
    parse_seconds,
)
from madcheck.config.envref import EnvReferenceError, resolve
from madcheck.config.noise import (
    NOISE_ARGUMENTS,
    NoiseConfigError,
    NoiseSettings,
    all_sender_names,
    noise_settings,
    requested_senders,
    unwritable_table_name,
)
from madcheck.config.quoting import unquote
from madcheck.config.senders import (
    SECRET_ARGUMENTS,
    build_senders_config,
)
from madcheck.config.thresholds import Threshold, parse_thresholds

DEFAULT_COUNT_TEXT = (
    "MAD count alert: Field $field in $table outlier for $threshold_count consecutive points. "
    "Tags: $tags"
)
DEFAULT_TIME_TEXT = (
    "MAD duration alert: Field $field in $table outlier for $threshold_time. Tags: $tags"
)
DEFAULT_RECOVERY_TEXT = (
    "MAD recovery: Field $field in $table back to normal after $duration. Tags: $tags"
)
DEFAULT_MISSING_TEXT = (
    "MAD missing data: no data in $table for $duration (last point $last_seen). Tags: $tags"
)
MAX_RECOVERY_COUNT = 100_000
MAX_CONFIG_FILE_BYTES = 1024 * 1024


_MAX_LOOKBACK_S = 366 * 86_400.0
#: ``delivery_budget`` bounded the time a call spent posting alerts; calls no longer post any
RETIRED_DELIVERY_BUDGET = (
    "delivery_budget has no effect any more: alerts are posted by a background sender and a "
    "call never waits on the notifier (see notification_timeout, outbox_backoff)"
)


#: Every argument the MAD trigger reads; anything else is reported as a likely typo.
KNOWN_ARGUMENTS = frozenset(
    {
        "measurement",
        "mad_thresholds",
        "senders",
        "influxdb3_auth_token",
        "state_change_count",
        "notification_count_text",
        "notification_time_text",
        "notification_recovery_text",
        "notification_path",
        "port_override",
        "config_file_path",
        "alerts_table",
        "notify_recovery",
        "recovery_count",
        "repeat_interval",
        "notification_attempts",
        "retry_backoff",
        "notification_timeout",
        "delivery_budget",  # retired: accepted with a warning
        "outbox_size",
        "outbox_backoff",
        "outbox_backoff_max",
        "warm_start",
        "warm_start_lookback",
        "warm_start_max_rows",
        "mad_floor",
        "mad_floor_pct",
        "missing_after",
        "missing_lookback",
        "notification_missing_text",
    }
    | SECRET_ARGUMENTS
    | NOISE_ARGUMENTS
)


class ConfigError(ValueError):
    """The trigger cannot run with these arguments; the message says which and why."""


@dataclass(frozen=True)
class DeliverySettings:
    """How alerts reach the notifier: where, as whom, and how patiently."""

    port: int = 8181
    path: str = "notify"
    token: str | None = field(default=None, repr=False)
    attempts: int = 3
    backoff_s: tuple[float, float] = (1.0, 4.0)
    timeout_s: float = 10.0
    #: Undelivered alerts kept for later calls; past it the oldest are dropped (logged).
    outbox_size: int = 10_000
    #: First pause before the outbox is retried; it doubles per failed pass up to the cap.
    outbox_backoff_s: float = 1.0
    outbox_backoff_max_s: float = 30.0

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/api/v3/engine/{self.path}"


@dataclass(frozen=True)
class WarmStartSettings:
    """Refilling the windows of series the trigger has not seen since it (re)started."""

    enabled: bool = True
    lookback_ns: int = 3_600_000_000_000
    max_rows: int = 50_000


@dataclass(frozen=True)
class MissingSettings:
    """Missing-data alerts of a scheduled trigger (``process_scheduled_call``): a series whose
    last point is ``after_ns`` old or older is missing; only points of the last ``lookback_ns``
    are looked at, so a series silent for longer is no longer looked for."""

    after_ns: int
    lookback_ns: int = 86_400_000_000_000
    text: str = DEFAULT_MISSING_TEXT


@dataclass(frozen=True)
class Config:
    measurement: str
    thresholds: tuple[Threshold, ...]
    senders_config: Mapping[str, Mapping[str, str]] = field(repr=False)
    state_change_count: int = 0
    count_text: str = DEFAULT_COUNT_TEXT
    time_text: str = DEFAULT_TIME_TEXT
    delivery: DeliverySettings = DeliverySettings()
    #: Table every alert event is written to; empty turns the history off.
    alerts_table: str = "mad_alerts"
    warm_start: WarmStartSettings = WarmStartSettings()
    #: Alert lifecycle (docs/alert-lifecycle.md): recovery notifications after ``recovery_count``
    #: consecutive normal points, and at most one repeat per ``repeat_interval_ns`` (0: no limit).
    notify_recovery: bool = False
    recovery_count: int = 3
    recovery_text: str = DEFAULT_RECOVERY_TEXT
    repeat_interval_ns: int = 0
    #: severity routes and the other noise-control stages (docs/noise-control.md)
    noise: NoiseSettings = field(default_factory=NoiseSettings)
    #: ``missing_after`` and friends; None when not set (process_writes does not need them)
    missing: MissingSettings | None = None

    @property
    def sender_names(self) -> list[str]:
        return list(self.senders_config)


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    warnings: tuple[str, ...]


def load_config(
    args: Mapping[str, str] | None,
    environ: Mapping[str, str] | None = None,
    *,
    plugin_dir: Path | None = None,
    scheduled: bool = False,
) -> LoadedConfig:
    """Merge, validate and type every setting. Raises ``ConfigError`` if the trigger cannot run.

    ``plugin_dir`` is where ``config_file_path`` is looked up when ``PLUGIN_DIR`` is not set
    (InfluxDB 3 never sets it; a directory plugin knows its own folder). ``scheduled``: the
    config of a scheduled trigger (missing data), which needs ``missing_after`` and may go
    without ``mad_thresholds``, so that one set of arguments serves both kinds of trigger.
    """
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = {key.strip(): value for key, value in (args or {}).items()}
    warnings: list[str] = []

    file_keys: set[str] = set()
    config_file = merged.get("config_file_path")
    if config_file not in (None, ""):
        from_file = read_config_file(config_file_location(str(config_file), env, plugin_dir))
        warnings.extend(_unknown_file_keys(from_file))
        file_keys.update(from_file)
        merged.update(from_file)
    try:
        return _validated(merged, env, warnings, file_keys, scheduled)
    except EnvReferenceError as problem:
        raise ConfigError(str(problem)) from None


def _validated(
    merged: dict[str, Any],
    env: Mapping[str, str],
    warnings: list[str],
    file_keys: set[str],
    scheduled: bool,
) -> LoadedConfig:
    """Type and check the merged settings (``file_keys``: those the TOML file set)."""

    measurement = _text(merged.get("measurement"))
    if not measurement:
        raise ConfigError("measurement is required: the table to monitor, e.g. measurement=cpu")

    thresholds = _thresholds(merged, warnings, required=not scheduled)
    missing = _missing(merged)
    if scheduled and missing is None:
        raise ConfigError(
            "missing_after is required for a scheduled trigger: how old a series' last point "
            "may get before it counts as missing, e.g. missing_after=5m"
        )

    default_names, level_names = requested_senders(merged)
    names = all_sender_names(default_names, level_names)
    if not default_names and len(level_names) < 3:
        raise ConfigError("senders is required: dot-separated channels, e.g. senders=slack.http")
    try:
        senders_config, sender_warnings = build_senders_config(names, merged, env)
    except ValueError as problem:
        raise ConfigError(str(problem)) from None
    warnings.extend(sender_warnings)
    if not senders_config:
        raise ConfigError("no usable sender: " + "; ".join(sender_warnings))
    try:
        noise = noise_settings(
            merged, measurement, default_names, level_names, senders_config, thresholds
        )
    except NoiseConfigError as problem:
        raise ConfigError(str(problem)) from None

    state_change_count = _integer(merged, "state_change_count", 0, minimum=0)
    if state_change_count == 1:
        warnings.append(
            "state_change_count=1 would suppress every alert; treated as 0 (suppression off)"
        )
        state_change_count = 0

    token_argument = resolve("influxdb3_auth_token", merged.get("influxdb3_auth_token"), env)
    token = _text(token_argument) or env.get("INFLUXDB3_AUTH_TOKEN") or None
    if token is not None and not _is_header_safe(token):
        raise ConfigError(
            "the InfluxDB token (influxdb3_auth_token or INFLUXDB3_AUTH_TOKEN) holds characters "
            "an HTTP header cannot carry: white space, typographic quotes or other non-ASCII"
        )
    if token is None:
        warnings.append(
            "no influxdb3_auth_token or INFLUXDB3_AUTH_TOKEN: alerts are sent without a token"
        )
    delivery = DeliverySettings(
        port=_integer(merged, "port_override", 8181, minimum=1, maximum=65535),
        path=_text(merged.get("notification_path")).strip("/") or "notify",
        token=token,
        attempts=_integer(merged, "notification_attempts", 3, minimum=1, maximum=10),
        backoff_s=_backoff(merged, "retry_backoff", (1.0, 4.0)),
        timeout_s=_seconds(merged, "notification_timeout", 10.0),
        outbox_size=_integer(merged, "outbox_size", 10_000, minimum=1, maximum=1_000_000),
        outbox_backoff_s=_seconds(merged, "outbox_backoff", 1.0),
        outbox_backoff_max_s=_seconds(merged, "outbox_backoff_max", 30.0),
    )
    if delivery.timeout_s <= 0:
        raise ConfigError("notification_timeout must be greater than zero, e.g. 10s")
    if merged.get("delivery_budget") not in (None, ""):
        warnings.append(RETIRED_DELIVERY_BUDGET)
    if delivery.outbox_backoff_s > delivery.outbox_backoff_max_s:
        raise ConfigError("outbox_backoff must not be greater than outbox_backoff_max")

    lookback_s = _seconds(merged, "warm_start_lookback", 3600.0)
    if lookback_s > _MAX_LOOKBACK_S:
        raise ConfigError(f"warm_start_lookback must be at most 366d, got {lookback_s:g}s")

    config = Config(
        measurement=measurement,
        thresholds=tuple(thresholds),
        senders_config=senders_config,
        state_change_count=state_change_count,
        count_text=_text(merged.get("notification_count_text")) or DEFAULT_COUNT_TEXT,
        time_text=_text(merged.get("notification_time_text")) or DEFAULT_TIME_TEXT,
        delivery=delivery,
        alerts_table=_alerts_table(merged, measurement),
        warm_start=WarmStartSettings(
            enabled=_boolean(merged, "warm_start", True),
            lookback_ns=round(lookback_s * 1e9),
            max_rows=_integer(merged, "warm_start_max_rows", 50_000, minimum=1, maximum=10_000_000),
        ),
        notify_recovery=_boolean(merged, "notify_recovery", False),
        recovery_count=_integer(merged, "recovery_count", 3, minimum=1, maximum=MAX_RECOVERY_COUNT),
        recovery_text=_text(merged.get("notification_recovery_text")) or DEFAULT_RECOVERY_TEXT,
        repeat_interval_ns=_repeat_interval(merged),
        noise=noise,
        missing=missing,
    )
    if not config.notify_recovery:
        unused = [n for n in ("recovery_count", "notification_recovery_text") if merged.get(n)]
        warnings.extend(f"{name} has no effect without notify_recovery=true" for name in unused)
    unknown = sorted(name for name in set(merged) - KNOWN_ARGUMENTS if name not in file_keys)
    if unknown:
        warnings.append(f"ignoring unknown argument(s), a typo? {', '.join(unknown)}")
    return LoadedConfig(config, tuple(warnings))


def _thresholds(
    merged: Mapping[str, Any], warnings: list[str], required: bool
) -> tuple[Threshold, ...]:
    """``mad_thresholds``, each carrying the trigger's MAD floor (``mad_floor``,
    ``mad_floor_pct``); required unless the trigger is a scheduled one."""
    floor = _number(merged, "mad_floor", 0.0)
    floor_pct = _number(merged, "mad_floor_pct", 0.0)
    if merged.get("mad_thresholds") in (None, ""):
        if required:
            raise ConfigError(
                "mad_thresholds is required, e.g. mad_thresholds=temp:2.5:20:5@load:3:10:2m"
            )
        return ()
    thresholds, problems = parse_thresholds(merged["mad_thresholds"])
    warnings.extend(f"mad_thresholds: {problem}" for problem in problems)
    if not thresholds:
        raise ConfigError("mad_thresholds has no usable condition: " + "; ".join(problems))
    return tuple(
        replace(threshold, mad_floor=floor, mad_floor_pct=floor_pct) for threshold in thresholds
    )


def _missing(merged: Mapping[str, Any]) -> MissingSettings | None:
    """``missing_after`` (with ``missing_lookback`` and its template), or None when not set."""
    if merged.get("missing_after") in (None, ""):
        return None
    after_s = _seconds(merged, "missing_after", 0.0)
    lookback_s = _seconds(merged, "missing_lookback", 86_400.0)
    if after_s <= 0:
        raise ConfigError("missing_after must be greater than zero, e.g. missing_after=5m")
    if lookback_s > _MAX_LOOKBACK_S:
        raise ConfigError(f"missing_lookback must be at most 366d, got {lookback_s:g}s")
    if lookback_s <= after_s:
        raise ConfigError(
            "missing_lookback must be longer than missing_after: a series is looked for only "
            "among the points of the last missing_lookback"
        )
    return MissingSettings(
        after_ns=round(after_s * NS_PER_UNIT["s"]),
        lookback_ns=round(lookback_s * NS_PER_UNIT["s"]),
        text=_text(merged.get("notification_missing_text")) or DEFAULT_MISSING_TEXT,
    )


def _number(merged: Mapping[str, Any], name: str, default: float) -> float:
    """A finite, non-negative number (``mad_floor``, ``mad_floor_pct``)."""
    raw = merged.get(name)
    if raw is None or raw == "":
        return default
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(_text(raw) if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {raw!r}")
    return value


def _alerts_table(merged: Mapping[str, Any], measurement: str) -> str:
    raw = merged.get("alerts_table")
    table = "mad_alerts" if raw is None else _text(raw)
    if table and unwritable_table_name(table):
        raise ConfigError(
            f"alerts_table {table!r} cannot be written by the engine: use a name without "
            "spaces, control characters or backslashes, not starting with '#'"
        )
    if table == measurement:
        raise ConfigError(
            f"alerts_table must differ from measurement ({measurement}): the plugin would "
            "react to its own alerts"
        )
    return table


def _boolean(merged: Mapping[str, Any], name: str, default: bool) -> bool:
    raw = merged.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    text = _text(raw).lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _repeat_interval(merged: Mapping[str, Any]) -> int:
    """``repeat_interval`` in nanoseconds of data time; ``0`` or absent: every alert is sent."""
    return round(_seconds(merged, "repeat_interval", 0.0) * NS_PER_UNIT["s"])


def config_file_location(
    text: str, environ: Mapping[str, str], plugin_dir: Path | None = None
) -> Path:
    """The file ``config_file_path`` names, resolved (symlinks too) and inside the plugin dir.

    Raises ``ConfigError`` naming the argument; ``text`` is shown only as given (``!r``).
    """
    relative = unquote(text)
    base_text = environ.get("PLUGIN_DIR") or (str(plugin_dir) if plugin_dir else "")
    if not base_text:
        raise ConfigError(
            f"config_file_path={relative!r} needs the plugin directory: set PLUGIN_DIR in the "
            "server's environment to the server's --plugin-dir (InfluxDB 3 does not set it), "
            "or deploy the plugin as a directory plugin"
        )
    if not relative or Path(relative).is_absolute():
        raise ConfigError(
            f"config_file_path must be relative to the plugin directory, got {relative!r}"
        )
    if not relative.lower().endswith(".toml"):
        raise ConfigError(f"config_file_path must name a .toml file, got {relative!r}")
    try:
        base = Path(base_text).resolve(strict=True)
        path = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise ConfigError(
            f"config_file_path {relative!r} not found in the plugin directory"
        ) from None
    if not path.is_relative_to(base):
        raise ConfigError(
            f"config_file_path {relative!r} leads outside the plugin directory (through '..' or "
            "a symbolic link); keep the file inside it"
        )
    return path


def config_file_identity(
    text: str, environ: Mapping[str, str], plugin_dir: Path | None = None
) -> tuple[Any, ...]:
    """What changes when the ``config_file_path`` file does: its place, size and mtime, or
    why it is refused. Never raises and never reads the file: it is asked on every call."""
    try:
        path = config_file_location(text, environ, plugin_dir)
        info = path.stat()
    except ConfigError as problem:
        return ("refused", str(problem))
    except OSError as error:
        return ("unreadable", error.errno)
    return (str(path), info.st_ino, info.st_size, info.st_mtime_ns)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the regular file at ``path`` (at most ``MAX_CONFIG_FILE_BYTES``) as TOML."""
    name = "the file config_file_path names"
    try:
        # O_NONBLOCK: opening a FIFO must not hang the trigger; O_NOFOLLOW: the file may not be
        # swapped for a symbolic link after it was resolved.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise ConfigError(f"{name} cannot be opened: {error.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ConfigError(f"config_file_path must name a regular file; {name} is not one")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(MAX_CONFIG_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{name} cannot be read: {error.strerror}") from None
    finally:
        os.close(descriptor)
    if len(data) > MAX_CONFIG_FILE_BYTES:
        raise ConfigError(f"{name} is larger than {MAX_CONFIG_FILE_BYTES // 1024} KiB")
    return parse_toml(data, name)


def read_toml_file(path: Path, name: str) -> dict[str, Any]:
    """Parse a TOML file, turning every way it can fail into one ``ConfigError`` about ``name``."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{name} not found") from None
    except OSError as error:
        raise ConfigError(f"{name} cannot be read: {error.strerror}") from None
    if len(data) > MAX_CONFIG_FILE_BYTES:
        raise ConfigError(f"{name} is larger than {MAX_CONFIG_FILE_BYTES // 1024} KiB")
    return parse_toml(data, name)


def parse_toml(data: bytes, name: str) -> dict[str, Any]:
    """TOML from bytes; the error says where parsing stopped, never what the file holds."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{name} is not UTF-8 text (byte {error.start}); TOML must be UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        where = str(error).rsplit("(", 1)[-1].rstrip(")") if "(at " in str(error) else "somewhere"
        raise ConfigError(f"{name} is not valid TOML ({where})") from None


def _unknown_file_keys(document: Mapping[str, Any]) -> list[str]:
    """A warning about keys of the file that are no argument, naming only known arguments."""
    unknown = [key for key in document if key not in KNOWN_ARGUMENTS]
    if not unknown:
        return []
    hints = sorted(
        {match for key in unknown for match in difflib.get_close_matches(key, KNOWN_ARGUMENTS, 1)}
    )
    hint = f"; did you mean {', '.join(hints)}?" if hints else ""
    return [f"the config_file_path file has {len(unknown)} key(s) that are no argument{hint}"]


def _is_header_safe(token: str) -> bool:
    return token.isascii() and token.isprintable() and not any(c.isspace() for c in token)


def _text(value: object) -> str:
    if value is None:
        return ""
    return unquote(value) if isinstance(value, str) else str(value)


def _integer(
    merged: Mapping[str, Any], name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    raw = merged.get(name)
    if raw is None or raw == "":
        return default
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        value = int(_text(raw) if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name} must be {bound}, got {value}")
    return value


def _seconds(merged: Mapping[str, Any], name: str, default: float) -> float:
    """A duration argument: ``250ms``, ``2s``, or a bare number of seconds (``0`` allowed)."""
    raw = merged.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_seconds(_text(raw))
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None


def _backoff(
    merged: Mapping[str, Any], name: str, default: tuple[float, float]
) -> tuple[float, float]:
    raw = merged.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_backoff_range(_text(raw))
    except ValueError as error:
        raise ConfigError(f"{name}: {error} (write a range such as 1s..4s)") from None
