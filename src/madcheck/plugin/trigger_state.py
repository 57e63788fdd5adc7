"""The state a MAD trigger keeps between calls: found in its cache, or built once per change.

The engine runs a single-file plugin in fresh globals on every call, so both entry points of the
MAD check, ``process_writes`` (``madcheck.plugin.writes``) and ``process_scheduled_call``
(``madcheck.plugin.missing``), keep everything that must survive between calls in one object in
the trigger's ``influxdb3_local.cache``: the parsed config, the notifier client, the outbox and
its background sender (``madcheck.plugin.delivery``), plus what each detects with. It is rebuilt
only when the trigger's arguments, the TOML file or the environment variables it read change, and
then takes the outbox over, so a config change loses no waiting alert. A config that fails is
remembered, so a broken trigger logs once per change, not once per call.

Every call asks "did anything the config was built from change?" (``Fingerprint.current``). The
environment part is answered from the variables the config actually read, recorded while it was
built (``RecordingEnviron``): the documented defaults it looks up and every ``env:NAME`` of the
arguments and the TOML file. The build is a function of the arguments, the file and those values,
so if none of them changed, a rebuild would give the same config. Hashing the whole environment
instead cost some 40 µs a call, most of a one-row flush.

With ``--run-asynchronous`` the engine may run calls of one trigger at once, so the state is
built under a lock (one state per change, one sender) and each call works under the state's own
``lock``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from madcheck.config.envref import variable_name
from madcheck.config.senders import SECRET_ARGUMENTS
from madcheck.config.settings import Config, ConfigError, config_file_identity, load_config
from madcheck.notify.client import NotifierClient
from madcheck.notify.outbox import Outbox
from madcheck.notify.retry import RetryPolicy
from madcheck.notify.sender import OutboxSender
from madcheck.plugin.calllog import CallLog
from madcheck.plugin.delivery import Outcomes, carried_outbox, new_sender

#: held while a call finds or builds its trigger's state, so overlapping first calls build one
#: (the package is imported once per process: this lock outlives the calls)
_STATE_LOCK = threading.Lock()


@dataclass(kw_only=True)
class AlertingState:
    """What every MAD trigger keeps between calls, whatever it detects."""

    fingerprint: Fingerprint
    config: Config
    client: NotifierClient
    secrets: tuple[str, ...]
    #: alerts not yet confirmed by the notifier; carried over when the config is rebuilt
    outbox: Outbox
    #: what the sender did since the last call logged it; carried over like the outbox
    outcomes: Outcomes
    #: held by a call while it detects: calls of one trigger may overlap (``run_async``)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: the background thread posting the outbox; it holds this state only weakly
    sender: OutboxSender = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.sender = new_sender(self, self.outbox, self.outcomes)


State = TypeVar("State", bound=AlertingState)
#: builds a trigger's state from its new config, the fields every state has (``AlertingState``'s
#: constructor arguments) and the state it replaces, if any; it may log what it built
Builder = Callable[[Config, dict[str, Any], State | None, CallLog], State]


def cached_state(
    engine: Any,
    key: str,
    args: Any,
    log: CallLog,
    plugin_dir: Path | None,
    build: Builder[State],
    *,
    scheduled: bool = False,
    refused: str = "no detection",
) -> State | None:
    """The trigger's state under ``key`` in its cache, rebuilt when what it is built from
    changed; None while the config is refused (logged once per change: "``refused`` until ...").

    ``scheduled`` loads the config of a scheduled trigger (``load_config(scheduled=True)``).
    """
    state: State | None = engine.cache.get(key)
    if state is not None and state.fingerprint.current(args, plugin_dir):
        return state
    failed: Fingerprint | None = engine.cache.get(key + ".failed")
    if failed is not None and failed.current(args, plugin_dir):
        return None  # refused before and nothing changed: not re-read, not re-logged
    with _STATE_LOCK:
        state = engine.cache.get(key)  # an overlapping call may have built it meanwhile
        if state is not None and state.fingerprint.current(args, plugin_dir):
            return state
        environ = RecordingEnviron(os.environ)
        toml_identity = _toml_identity(args, environ, plugin_dir)
        try:
            config = _load(engine, args, environ, log, plugin_dir, scheduled, refused)
        finally:  # what it read so far, refused or not: a change there may mend it
            fingerprint = Fingerprint.of(args, environ, toml_identity)
        if config is None:
            engine.cache.put(key + ".failed", fingerprint)
            return None
        common: dict[str, Any] = {
            "fingerprint": fingerprint,
            "config": config,
            "client": notifier_client(config),
            "secrets": secrets_of(config),
            "outbox": carried_outbox(state.outbox if state else None, config, log),
            "outcomes": state.outcomes if state else Outcomes(),
        }
        built = build(config, common, state, log)
        if state is not None:
            state.sender.stop()  # its replacement takes the outbox over at its next pass
        engine.cache.put(key, built)
        engine.cache.delete(key + ".failed")
    return built


def _load(
    engine: Any,
    args: Any,
    environ: Mapping[str, str],
    log: CallLog,
    plugin_dir: Path | None,
    scheduled: bool,
    refused: str,
) -> Config | None:
    """The validated config, its warnings logged; None (logged, remembered) if refused."""
    if args is not None and not isinstance(args, Mapping):
        log.error(f"trigger arguments must be key=value pairs, got {type(args).__name__}")
        return None
    arguments = {str(k): v for k, v in (args or {}).items()}
    # An env:NAME reference is not itself a secret: errors may name the variable.
    log.hide(
        v
        for k, v in arguments.items()
        if is_secret(k) and isinstance(v, str) and variable_name(v) is None
    )
    try:
        loaded = load_config(arguments, environ, plugin_dir=plugin_dir, scheduled=scheduled)
    except ConfigError as error:
        log.error(
            f"configuration error, {refused} until the arguments, the config file or the "
            f"environment change: {error}"
        )
        return None
    log.hide(secrets_of(loaded.config))
    for warning in loaded.warnings:
        log.warn(warning)
    return loaded.config


class RecordingEnviron(Mapping[str, str]):
    """An environment (``os.environ``) that remembers what was read from it: each variable
    asked for and the value it had then (None when unset), or that it was read whole."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.seen: dict[str, str | None] = {}
        self.read_whole = False

    def __getitem__(self, name: str) -> str:
        value = self._environ.get(name)
        self.seen.setdefault(name, value)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        self.read_whole = True
        return iter(self._environ)

    def __len__(self) -> int:
        self.read_whole = True
        return len(self._environ)


@dataclass(frozen=True)
class Fingerprint:
    """What a config was built from: the arguments, the environment variables it read (their
    names and values then) and the TOML file's identity (``config_file_identity``)."""

    arguments: dict[Any, Any]
    variables: tuple[str, ...]
    #: the variables' values, in the order of ``variables``; the hash of the whole environment
    #: if the build read it whole (no code does today: a fallback that stays correct)
    values: tuple[str | None, ...] | int
    toml_identity: tuple[Any, ...] | None
    #: ``variables`` and ``values`` as ``os.environ`` stores them (``_StoredVariables``)
    stored: _StoredVariables | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls, args: Any, environ: RecordingEnviron, toml_identity: tuple[Any, ...] | None
    ) -> Fingerprint:
        """The fingerprint of a build that read ``environ`` and found ``toml_identity``."""
        variables = tuple(environ.seen)
        values: tuple[str | None, ...] | int = tuple(environ.seen.values())
        stored = None
        if environ.read_whole:
            values = _whole_environment()
        else:
            stored = _StoredVariables.of(environ.seen)
        return cls(_arguments(args), variables, values, toml_identity, stored)

    def current(self, args: Any, plugin_dir: Path | None) -> bool:
        """Whether a build now, from ``args``, would read what this one read: same arguments,
        same values of the same variables, same TOML file."""
        # the engine's arguments are a dict: compared as they are, without a copy
        if (args if type(args) is dict else _arguments(args)) != self.arguments:
            return False
        if isinstance(self.values, int):
            if _whole_environment() != self.values:
                return False
        elif not self._variables_unchanged():
            return False
        if self.toml_identity is None:  # no config file then, and the same arguments now
            return True
        return _toml_identity(args, os.environ, plugin_dir) == self.toml_identity

    def _variables_unchanged(self) -> bool:
        if self.stored is not None and self.stored.unchanged():
            return True
        return tuple(map(os.environ.get, self.variables)) == self.values


@dataclass(frozen=True)
class _StoredVariables:
    """A few variables and their values as ``os.environ`` stores them (encoded: bytes on POSIX),
    compared with what it stores now in one C-level pass.

    ``os.environ.get`` encodes the name, looks it up and decodes the value, raising and catching
    two ``KeyError`` for an unset variable: some 1 µs a variable, most of the fingerprint's cost
    on every call. ``os.environ`` keeps its variables in a dict of encoded names and values
    (``_data``, updated by every assignment and deletion through ``os.environ``, which is also
    all that ``os.environ.get`` sees); encoding is one to one, so equal encoded values are equal
    values. Where ``os.environ`` has no such dict (replaced by another mapping), ``unchanged``
    answers False and the caller compares through ``os.environ.get``.
    """

    names: tuple[Any, ...]
    values: tuple[Any, ...]

    @classmethod
    def of(cls, seen: Mapping[str, str | None]) -> _StoredVariables | None:
        environ = os.environ
        encode_name = getattr(environ, "encodekey", None)
        encode_value = getattr(environ, "encodevalue", None)
        if encode_name is None or encode_value is None:
            return None
        return cls(
            tuple(map(encode_name, seen)),
            tuple(None if value is None else encode_value(value) for value in seen.values()),
        )

    def unchanged(self) -> bool:
        """True when every variable has its value (or is unset) as then; False when that is
        not so, or cannot be told this way."""
        data = getattr(os.environ, "_data", None)
        return type(data) is dict and tuple(map(data.get, self.names)) == self.values


def _arguments(args: Any) -> dict[Any, Any]:
    """A copy of the arguments: the engine may hand the same dict to every call."""
    return dict(args) if isinstance(args, Mapping) else {}


def _whole_environment() -> int:
    return hash(frozenset(os.environ.items()))


def _toml_identity(
    args: Any, environ: Mapping[str, str], plugin_dir: Path | None
) -> tuple[Any, ...] | None:
    """The identity of the ``config_file_path`` file, as ``load_config`` would resolve it."""
    config_file = args.get("config_file_path") if isinstance(args, Mapping) else None
    if not config_file:
        return None
    return config_file_identity(str(config_file), environ, plugin_dir)


def notifier_client(config: Config) -> NotifierClient:
    """The client posting this config's alerts to its notifier."""
    delivery = config.delivery
    return NotifierClient(
        delivery.url,
        delivery.token,
        RetryPolicy(
            attempts=delivery.attempts, backoff=delivery.backoff_s, timeout=delivery.timeout_s
        ),
    )


def is_secret(name: str) -> bool:
    """Whether the trigger argument ``name`` holds a secret (hidden from every log line)."""
    return name in SECRET_ARGUMENTS or name == "influxdb3_auth_token"


def secrets_of(config: Config) -> tuple[str, ...]:
    """The secret values of a validated config: every sender setting and the notifier token."""
    values = [v for sender in config.senders_config.values() for v in sender.values()]
    if config.delivery.token:
        values.append(config.delivery.token)
    return tuple(values)
