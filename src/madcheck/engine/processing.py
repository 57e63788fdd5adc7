"""The processing engine: triggers, WAL batching and plugin calls.

Writes land in storage first (so they are durable before the writer is answered) and are also
recorded here per database. Every flush interval the recorded rows are handed to each enabled
data-writes trigger of that database. Each such trigger owns one worker thread, so calls of a
trigger are serialized while HTTP writers never wait for a plugin: a writer only appends to a list.

Back-pressure: a trigger whose plugin is slower than the flush interval does not stall writers.
Rows that arrive while it is busy are merged into its next call (so one call may cover several
flushes). Only if more than ``max_pending_rows`` rows pile up for one trigger are the oldest ones
dropped, and the drop is logged as an ERROR in that trigger's log, so nothing is lost silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from madcheck.engine.api import EngineAPI, LogRecord, PendingWrite
from madcheck.engine.cache import GlobalCache, TriggerCache
from madcheck.engine.loader import load_entry_point
from madcheck.engine.storage import Storage, StorageError, TriggerDefinition, TriggerExistsError
from madcheck.engine.triggers import TriggerSpec, TriggerSpecError, parse_trigger_spec

logger = logging.getLogger("madcheck.engine")

#: One written row: its table name and the row in the engine's shape.
Row = tuple[str, dict[str, Any]]

DEFAULT_MAX_PENDING_ROWS = 1_000_000
_SHUTDOWN_ROUNDS = 3


class EngineError(Exception):
    """A request the engine refuses; ``status`` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _WritesWorker:
    """Runs one trigger's ``process_writes`` calls, one at a time, on its own thread."""

    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[Row]], None],
        report_drop: Callable[[int], None],
        max_pending_rows: int,
    ) -> None:
        self._run_batch = run_batch
        self._report_drop = report_drop
        self._max_pending_rows = max_pending_rows
        self._pending: list[Row] = []
        self._busy = False
        self._stopping = False
        self._discard = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=f"trigger-{name}", daemon=True)
        self._thread.start()

    def submit(self, rows: Sequence[Row]) -> None:
        dropped = 0
        with self._condition:
            self._pending.extend(rows)
            overflow = len(self._pending) - self._max_pending_rows
            if overflow > 0:
                del self._pending[:overflow]
                dropped = overflow
            self._condition.notify_all()
        if dropped:
            self._report_drop(dropped)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted row has been processed (tests and shutdown use this)."""
        with self._condition:
            return self._condition.wait_for(
                lambda: not self._pending and not self._busy, timeout=timeout
            )

    def stop(self, drain: bool) -> None:
        """Stop after the rows already submitted (``drain``) or right after the current call."""
        with self._condition:
            self._stopping = True
            self._discard = not drain
            self._condition.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending or self._stopping)
                if self._discard or (self._stopping and not self._pending):
                    self._pending = []
                    self._condition.notify_all()
                    return
                batch, self._pending = self._pending, []
                self._busy = True
            try:
                self._run_batch(batch)
            except Exception:
                # plugin failures are handled inside run_batch; this is the host's own failure
                # (storage gone, say): the trigger must still take the next batch
                logger.exception("trigger worker %s failed on a batch", self._thread.name)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()


@dataclass
class _Trigger:
    definition: TriggerDefinition
    spec: TriggerSpec
    cache: TriggerCache
    call_lock: threading.Lock = field(default_factory=threading.Lock)
    worker: _WritesWorker | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.definition.database, self.definition.name)


@dataclass(frozen=True)
class RequestCall:
    """What ``/api/v3/engine/<path>`` hands to a request trigger."""

    query_parameters: dict[str, str]
    request_headers: dict[str, str]
    request_body: bytes


def group_table_batches(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """``[(table, row), ...]`` -> ``[{"table_name", "rows"}]``, one batch per table, in order."""
    batches: dict[str, list[dict[str, Any]]] = {}
    for table, row in rows:
        batches.setdefault(table, []).append(dict(row))
    return [{"table_name": table, "rows": table_rows} for table, table_rows in batches.items()]


class ProcessingEngine:
    """Holds the running triggers and feeds them writes and requests."""

    def __init__(
        self,
        storage: Storage,
        plugin_dir: Path,
        *,
        max_pending_rows: int = DEFAULT_MAX_PENDING_ROWS,
        clock_ns: Callable[[], int] = time.time_ns,
        global_cache: GlobalCache | None = None,
    ) -> None:
        self._storage = storage
        self._plugin_dir = plugin_dir
        self._max_pending_rows = max_pending_rows
        self._clock_ns = clock_ns
        self._global_cache = global_cache if global_cache is not None else GlobalCache()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._triggers: dict[tuple[str, str], _Trigger] = {}
        self._pending: dict[str, list[Row]] = {}
        self._flusher: threading.Thread | None = None
        self._stop_flushing = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------
    def load_saved_triggers(self) -> None:
        """Start every trigger storage remembers (a restart keeps triggers and arguments)."""
        for definition in self._storage.triggers():
            try:
                spec = parse_trigger_spec(definition.trigger_specification)
            except TriggerSpecError as exc:
                logger.error("skipping saved trigger %s: %s", definition.name, exc)
                continue
            self._start(definition, spec)

    def start_flushing(self, interval_s: float) -> None:
        """Flush recorded writes to the triggers every ``interval_s`` seconds."""

        def loop() -> None:
            while not self._stop_flushing.wait(interval_s):
                self.flush()

        self._flusher = threading.Thread(target=loop, name="wal-flush", daemon=True)
        self._flusher.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop flushing, hand the last writes to the triggers and wait for them to finish."""
        self._stop_flushing.set()
        if self._flusher is not None:
            self._flusher.join()
        deadline = time.monotonic() + timeout_s
        # Plugin writes made while draining are writes too: pass them on for a few rounds
        # (bounded, since a trigger may keep writing to a table it watches).
        for _ in range(_SHUTDOWN_ROUNDS):
            if not self.wait_idle(max(0.0, deadline - time.monotonic())):
                break
            with self._lock:
                if not self._pending:
                    break
        with self._lock:
            workers = [t.worker for t in self._triggers.values() if t.worker is not None]
        for worker in workers:
            worker.stop(drain=True)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    # -- writes --------------------------------------------------------------------------------
    def record_writes(self, database: str, rows: Sequence[Row]) -> None:
        """Remember rows already stored, for the next flush. Never blocks on a plugin."""
        if not rows:
            return
        with self._lock:
            self._pending.setdefault(database, []).extend(rows)

    def flush(self) -> None:
        """Give each enabled data-writes trigger the rows of its database since the last flush.

        Flushes are serialized so that rows reach each trigger in the order they were written,
        even when a shutdown or ``wait_idle`` flush races the scheduled one.
        """
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                triggers = list(self._triggers.values())
            self._dispatch(pending, triggers)

    def _dispatch(self, pending: dict[str, list[Row]], triggers: list[_Trigger]) -> None:
        for database, rows in pending.items():
            for trigger in triggers:
                if (
                    trigger.worker is None
                    or trigger.definition.disabled
                    or trigger.definition.database != database
                ):
                    continue
                selected = [row for row in rows if trigger.spec.matches_table(row[0])]
                if selected:
                    trigger.worker.submit(selected)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Flush now and wait until every trigger has processed what it was given."""
        self.flush()
        with self._lock:
            workers = [t.worker for t in self._triggers.values() if t.worker is not None]
        return all(worker.wait_idle(timeout) for worker in workers)

    # -- trigger management --------------------------------------------------------------------
    def create_trigger(self, definition: TriggerDefinition) -> None:
        if not definition.database or not definition.name:
            raise EngineError(400, "db and trigger_name are required")
        try:
            spec = parse_trigger_spec(definition.trigger_specification)
        except TriggerSpecError as exc:
            raise EngineError(400, str(exc)) from exc
        self._plugin_path(definition.plugin_filename)
        with self._lock:
            if (definition.database, definition.name) in self._triggers:
                raise EngineError(
                    409,
                    f"trigger {definition.name!r} already exists in database "
                    f"{definition.database!r}",
                )
            if spec.path is not None and self._request_trigger(spec.path) is not None:
                raise EngineError(409, f"another trigger already serves request:{spec.path}")
            try:
                self._storage.save_trigger(definition)
            except TriggerExistsError as exc:
                raise EngineError(409, str(exc)) from exc
            except StorageError as exc:
                raise EngineError(400, str(exc)) from exc
            self._start_locked(definition, spec)

    def delete_trigger(self, database: str, name: str) -> None:
        with self._lock:
            trigger = self._triggers.pop((database, name), None)
            if trigger is None:
                raise EngineError(404, f"trigger {name!r} not found in database {database!r}")
            self._storage.delete_trigger(database, name)
        if trigger.worker is not None:
            trigger.worker.stop(drain=False)

    def set_disabled(self, database: str, name: str, disabled: bool) -> None:
        with self._lock:
            trigger = self._triggers.get((database, name))
            if trigger is None:
                raise EngineError(404, f"trigger {name!r} not found in database {database!r}")
            self._storage.set_trigger_disabled(database, name, disabled)
            trigger.definition = replace(trigger.definition, disabled=disabled)

    def _start(self, definition: TriggerDefinition, spec: TriggerSpec) -> None:
        with self._lock:
            self._start_locked(definition, spec)

    def _start_locked(self, definition: TriggerDefinition, spec: TriggerSpec) -> None:
        trigger = _Trigger(definition, spec, TriggerCache(self._global_cache))
        if spec.kind == "writes":
            trigger.worker = _WritesWorker(
                definition.name,
                run_batch=lambda rows: self._run_writes(trigger, rows),
                report_drop=lambda count: self._log(
                    trigger,
                    "ERROR",
                    f"dropped the {count} oldest pending rows: the plugin is slower than the "
                    "write rate",
                ),
                max_pending_rows=self._max_pending_rows,
            )
        self._triggers[trigger.key] = trigger

    def _plugin_path(self, plugin_filename: str) -> Path:
        """The plugin's file or package folder, which must lie inside the plugin directory."""
        base = self._plugin_dir.resolve()
        path = (base / plugin_filename).resolve()
        if not plugin_filename or not path.is_relative_to(base):
            raise EngineError(400, f"plugin_filename {plugin_filename!r} is not in the plugin dir")
        if not path.exists():
            raise EngineError(
                400, f"plugin file {plugin_filename!r} not found in the plugin directory"
            )
        return path

    # -- requests ------------------------------------------------------------------------------
    def _request_trigger(self, path: str) -> _Trigger | None:
        for trigger in self._triggers.values():
            if trigger.spec.path == path:
                return trigger
        return None

    def handle_request(self, path: str, call: RequestCall) -> tuple[bool, Any]:
        """Run the enabled request trigger serving ``path``.

        Returns ``(False, None)`` when no enabled trigger serves it, else ``(True, result)``.
        Raises ``EngineError(500)`` when the plugin fails (the failure is logged too).
        """
        with self._lock:
            trigger = self._request_trigger(path.strip("/"))
        if trigger is None or trigger.definition.disabled:
            return False, None
        api = self._api_for(trigger)
        with trigger.call_lock:
            try:
                function = load_entry_point(self._plugin_path_for(trigger), "process_request")
                result = function(
                    api,
                    call.query_parameters,
                    call.request_headers,
                    call.request_body,
                    self._args_for(trigger),
                )
            except (Exception, SystemExit) as exc:
                api.error(f"error running process_request: {type(exc).__name__}: {exc}")
                raise EngineError(500, "the request plugin failed; see the trigger's log") from exc
            self._apply_writes(trigger, api.take_writes())
        return True, result

    # -- running plugins -----------------------------------------------------------------------
    def _run_writes(self, trigger: _Trigger, rows: list[Row]) -> None:
        api = self._api_for(trigger)
        with trigger.call_lock:
            try:
                function = load_entry_point(self._plugin_path_for(trigger), "process_writes")
                function(api, group_table_batches(rows), self._args_for(trigger))
            except (Exception, SystemExit) as exc:
                api.error(f"error running process_writes: {type(exc).__name__}: {exc}")
                return
            self._apply_writes(trigger, api.take_writes())

    def _plugin_path_for(self, trigger: _Trigger) -> Path:
        try:
            return self._plugin_path(trigger.definition.plugin_filename)
        except EngineError as exc:
            raise FileNotFoundError(str(exc)) from exc

    @staticmethod
    def _args_for(trigger: _Trigger) -> dict[str, str] | None:
        arguments = trigger.definition.trigger_arguments
        return dict(arguments) if arguments else None

    def _api_for(self, trigger: _Trigger) -> EngineAPI:
        def query(sql: str, params: dict[str, str] | None, database: str) -> list[dict[str, Any]]:
            return self._storage.query(database, sql, params)

        return EngineAPI(
            database=trigger.definition.database,
            trigger_name=trigger.definition.name,
            query_handler=query,
            cache=trigger.cache,
            log_sink=lambda record: self._persist_log(trigger, record),
            clock_ns=self._clock_ns,
        )

    def _apply_writes(self, trigger: _Trigger, writes: Sequence[PendingWrite]) -> None:
        """Apply a plugin's writes after its call, as the engine does; they reach triggers too."""
        by_database: dict[str, list[str]] = {}
        for write in writes:
            by_database.setdefault(write.database, []).append(write.line)
        for database, lines in by_database.items():
            try:
                result = self._storage.write_lp(database, "\n".join(lines), precision="ns")
            except StorageError as exc:  # e.g. write_to_db with an invalid database name
                self._log(trigger, "ERROR", f"plugin write to {database!r} failed: {exc}")
                continue
            for error in result.errors:
                self._log(
                    trigger,
                    "ERROR",
                    f"plugin write to {database!r} rejected line {error.line_number}: "
                    f"{error.error_message}",
                )
            self.record_writes(database, result.rows)

    def _log(self, trigger: _Trigger, level: str, text: str) -> None:
        record = LogRecord(self._clock_ns(), trigger.definition.name, level, text)
        self._persist_log(trigger, record)

    def _persist_log(self, trigger: _Trigger, record: LogRecord) -> None:
        logger.log(
            _LEVELS.get(record.log_level, logging.INFO),
            "[%s] %s",
            record.trigger_name,
            record.log_text,
        )
        try:
            self._storage.append_logs(trigger.definition.database, [record])
        except Exception:
            logger.exception("could not store a log line of trigger %s", record.trigger_name)


_LEVELS: Mapping[str, int] = {"INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}
