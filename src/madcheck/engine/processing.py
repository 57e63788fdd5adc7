"""The processing engine: triggers, WAL flushes and plugin calls.

Writes land in storage first (so they are durable before the writer is answered) and are also
recorded here. Every flush interval the rows recorded since the last flush become one *flush*,
handed to each enabled data-writes trigger of their database. As in InfluxDB 3
(``PLUGIN_EVENT_BUFFER_SIZE`` and ``send_wal_contents`` in ``influxdb3_processing_engine``):

- every data-writes trigger has a queue of ``queue_size`` (60) flushes and one call per flush;
- when a trigger's queue is full the flush waits for room, and so does **every writer of the
  server** (any database) until it has room: a plugin slower than the flush interval slows all
  writes down to its own pace once its queue has filled;
- a trigger's calls run one at a time, unless it was created with ``run_async``, when each
  flush's call starts as soon as it is taken from the queue (at most ``max_async_calls`` at once);
- a failing call follows the trigger's ``error_behavior``: ``log`` logs it and goes on, ``retry``
  runs the call again on the same flush until it succeeds, ``disable`` disables the trigger;
- a call's writes are applied after it returns, per database as one write with
  ``accept_partial=false``: one rejected line loses all of that call's lines for that database;
- a scheduled trigger (``every:``, ``cron:``) calls ``process_scheduled_call`` at each time of
  its schedule (``madcheck.engine.schedule``, ``madcheck.engine.scheduler``), with the same
  ``run_async`` and ``error_behavior``; a disabled one stops, and starts afresh when enabled.

One difference is deliberate: a plugin's own writes never wait for room in a queue (in InfluxDB 3
they can, and a trigger writing to a table it watches can then wait on itself forever).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from madcheck.engine.api import EngineAPI, LogRecord, PendingWrite
from madcheck.engine.cache import GlobalCache, TriggerCache
from madcheck.engine.loader import load_entry_point
from madcheck.engine.schedule import call_time
from madcheck.engine.scheduler import ScheduleWorker
from madcheck.engine.storage import (
    ERROR_BEHAVIORS,
    Storage,
    StorageError,
    TriggerDefinition,
    TriggerExistsError,
)
from madcheck.engine.triggers import TriggerSpec, TriggerSpecError, parse_trigger_spec

logger = logging.getLogger("madcheck.engine")

#: One written row: its table name and the row in the engine's shape.
Row = tuple[str, dict[str, Any]]

#: Flushes a data-writes trigger may have waiting (InfluxDB 3's ``PLUGIN_EVENT_BUFFER_SIZE``).
PLUGIN_EVENT_BUFFER_SIZE = 60
#: Calls of one ``run_async`` trigger running at once; further flushes wait in its queue.
DEFAULT_MAX_ASYNC_CALLS = 64
#: Pause between the attempts of an ``error_behavior=retry`` trigger (InfluxDB 3 has none; a
#: short one keeps a plugin that always fails from spinning a core).
DEFAULT_RETRY_PAUSE_S = 0.05
_SHUTDOWN_ROUNDS = 3


class EngineError(Exception):
    """A request the engine refuses; ``status`` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _WritesWorker:
    """Takes one trigger's flushes from its bounded queue and runs a call for each.

    ``run_batch`` returns ``False`` when the trigger must stop taking flushes (it was disabled
    after a failing call); the flushes still queued are then dropped.
    """

    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[Row]], bool],
        on_room: Callable[[], None],
        *,
        queue_size: int,
        run_async: bool,
        max_async_calls: int,
    ) -> None:
        self._run_batch = run_batch
        self._on_room = on_room
        self._queue_size = queue_size
        self._run_async = run_async
        self._max_async_calls = max_async_calls
        self._queue: deque[list[Row]] = deque()
        self._running = 0
        self._stopping = False
        self._discard = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=f"trigger-{name}", daemon=True)
        self._thread.start()

    @property
    def full(self) -> bool:
        with self._condition:
            return len(self._queue) >= self._queue_size and not self._stopping

    def put(self, rows: list[Row]) -> None:
        """Queue one flush, waiting while the queue is full (a stopped worker drops it)."""
        with self._condition:
            self._condition.wait_for(lambda: len(self._queue) < self._queue_size or self._stopping)
            if self._stopping:
                return
            self._queue.append(rows)
            self._condition.notify_all()

    def drop_queued(self) -> None:
        """Forget the flushes not yet taken (the trigger was disabled); a running call goes on."""
        with self._condition:
            self._queue.clear()
            self._condition.notify_all()
        self._on_room()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued flush has been processed (tests and shutdown use this)."""
        with self._condition:
            return self._condition.wait_for(
                lambda: not self._queue and not self._running, timeout=timeout
            )

    def stop(self, drain: bool) -> None:
        """Stop after the flushes already queued (``drain``) or right after the running calls."""
        with self._condition:
            self._stopping = True
            self._discard = not drain
            self._condition.notify_all()
        self._on_room()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(self._can_take)
                if self._discard or not self._queue:  # stopping
                    self._queue.clear()
                    self._condition.wait_for(lambda: not self._running)
                    self._condition.notify_all()
                    return
                batch = self._queue.popleft()
                self._running += 1
            self._on_room()
            if self._run_async:
                threading.Thread(
                    target=self._call, args=(batch,), name=f"{self._thread.name}-call", daemon=True
                ).start()
            else:
                self._call(batch)

    def _can_take(self) -> bool:
        if self._discard:
            return True
        if self._queue:
            return self._running < self._max_async_calls
        return self._stopping

    def _call(self, batch: list[Row]) -> None:
        keep_going = True
        try:
            keep_going = self._run_batch(batch)
        except Exception:
            # plugin failures are handled inside run_batch; this is the host's own failure
            # (storage gone, say): the trigger must still take the next flush
            logger.exception("trigger worker %s failed on a flush", self._thread.name)
        finally:
            with self._condition:
                self._running -= 1
                if not keep_going:
                    self._queue.clear()
                self._condition.notify_all()
            if not keep_going:
                self._on_room()


@dataclass
class _Trigger:
    definition: TriggerDefinition
    spec: TriggerSpec
    cache: TriggerCache
    call_lock: threading.Lock = field(default_factory=threading.Lock)
    worker: _WritesWorker | None = None
    scheduler: ScheduleWorker | None = None

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
        queue_size: int = PLUGIN_EVENT_BUFFER_SIZE,
        max_async_calls: int = DEFAULT_MAX_ASYNC_CALLS,
        retry_pause_s: float = DEFAULT_RETRY_PAUSE_S,
        clock_ns: Callable[[], int] = time.time_ns,
        global_cache: GlobalCache | None = None,
    ) -> None:
        self._storage = storage
        self._plugin_dir = plugin_dir
        self._queue_size = queue_size
        self._max_async_calls = max_async_calls
        self._retry_pause_s = retry_pause_s
        self._clock_ns = clock_ns
        self._global_cache = global_cache if global_cache is not None else GlobalCache()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._closing = False
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
        with self._room:
            self._closing = True  # writers still waiting for room are let through
            self._room.notify_all()
        deadline = time.monotonic() + timeout_s
        if self._flusher is not None:  # it may be waiting for room in a slow trigger's queue
            self._flusher.join(timeout_s)
        # Plugin writes made while draining are writes too: pass them on for a few rounds
        # (bounded, since a trigger may keep writing to a table it watches).
        stuck = self._flusher is not None and self._flusher.is_alive()
        for _ in range(0 if stuck else _SHUTDOWN_ROUNDS):
            if not self.wait_idle(max(0.0, deadline - time.monotonic())):
                break
            with self._lock:
                if not self._pending:
                    break
        with self._lock:
            workers = [t.worker for t in self._triggers.values() if t.worker is not None]
            schedulers = [t.scheduler for t in self._triggers.values() if t.scheduler is not None]
        for scheduler in schedulers:
            scheduler.stop()
        for worker in workers:
            worker.stop(drain=True)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        for scheduler in schedulers:
            scheduler.join(max(0.0, deadline - time.monotonic()))

    # -- writes --------------------------------------------------------------------------------
    def record_writes(self, database: str, rows: Sequence[Row], *, wait: bool = True) -> None:
        """Remember rows already stored, for the next flush.

        With ``wait`` (a writer's write) this first waits while any data-writes trigger of the
        server has a full queue, as InfluxDB 3's writers wait for their flush to find room in
        every trigger's queue. A plugin's own writes pass ``wait=False``.
        """
        if not rows:
            return
        with self._room:
            if wait:
                self._room.wait_for(self._writers_may_go)
            self._pending.setdefault(database, []).extend(rows)

    def _writers_may_go(self) -> bool:
        """Whether no trigger's queue is full (called with ``_lock`` held)."""
        return self._closing or not any(
            t.worker is not None and t.worker.full for t in self._triggers.values()
        )

    def _notify_room(self) -> None:
        with self._room:
            self._room.notify_all()

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
                    trigger.worker.put(selected)  # waits while the trigger's queue is full

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
        if definition.error_behavior not in ERROR_BEHAVIORS:
            raise EngineError(400, f"error_behavior must be one of {', '.join(ERROR_BEHAVIORS)}")
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
        if trigger.scheduler is not None:
            trigger.scheduler.stop()

    def set_disabled(self, database: str, name: str, disabled: bool) -> None:
        with self._lock:
            trigger = self._triggers.get((database, name))
            if trigger is None:
                raise EngineError(404, f"trigger {name!r} not found in database {database!r}")
            self._storage.set_trigger_disabled(database, name, disabled)
            trigger.definition = replace(trigger.definition, disabled=disabled)
            if trigger.spec.kind == "schedule":
                # InfluxDB 3 stops a disabled scheduled trigger and starts its schedule afresh
                # (from the time it is enabled) when it is enabled again
                if trigger.scheduler is not None:
                    trigger.scheduler.stop()
                    trigger.scheduler = None
                if not disabled:
                    trigger.scheduler = self._scheduler_for(trigger)
        if disabled and trigger.worker is not None:
            trigger.worker.drop_queued()  # a disabled trigger stops; its writers go on

    def _start(self, definition: TriggerDefinition, spec: TriggerSpec) -> None:
        with self._lock:
            self._start_locked(definition, spec)

    def _start_locked(self, definition: TriggerDefinition, spec: TriggerSpec) -> None:
        trigger = _Trigger(definition, spec, TriggerCache(self._global_cache))
        if spec.kind == "writes":
            trigger.worker = _WritesWorker(
                definition.name,
                run_batch=lambda rows: self._run_writes(trigger, rows),
                on_room=self._notify_room,
                queue_size=self._queue_size,
                run_async=definition.run_async,
                max_async_calls=self._max_async_calls,
            )
        elif spec.kind == "schedule" and not definition.disabled:
            trigger.scheduler = self._scheduler_for(trigger)
        self._triggers[trigger.key] = trigger

    def _scheduler_for(self, trigger: _Trigger) -> ScheduleWorker:
        assert trigger.spec.schedule is not None
        return ScheduleWorker(
            trigger.definition.name,
            trigger.spec.schedule,
            run_call=lambda scheduled_ns: self._run_scheduled(trigger, scheduled_ns),
            run_async=trigger.definition.run_async,
            max_async_calls=self._max_async_calls,
        )

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
        # InfluxDB 3 answers a request trigger's requests one at a time unless run_async; a
        # failing request call is answered with 500 whatever the error_behavior
        with nullcontext() if trigger.definition.run_async else trigger.call_lock:
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
    def _run_writes(self, trigger: _Trigger, rows: list[Row]) -> bool:
        """One call for one flush, with the trigger's ``error_behavior`` on failure.

        Returns ``False`` when the trigger has been disabled and must take no more flushes.
        """
        return self._run_call(trigger, "process_writes", group_table_batches(rows))

    def _run_scheduled(self, trigger: _Trigger, scheduled_ns: int) -> bool:
        """One call at one scheduled time, ``call_time`` as InfluxDB 3 builds it; the same
        ``error_behavior`` as a data-writes call (``retry``: the same time again)."""
        return self._run_call(trigger, "process_scheduled_call", call_time(scheduled_ns))

    def _run_call(self, trigger: _Trigger, entry_point: str, event: Any) -> bool:
        """``entry_point(api, event, args)`` with the trigger's ``error_behavior`` on failure;
        ``False`` when the trigger has been disabled and must stop."""
        behavior = trigger.definition.error_behavior
        while True:
            api = self._api_for(trigger)
            try:
                function = load_entry_point(self._plugin_path_for(trigger), entry_point)
                function(api, event, self._args_for(trigger))
            except (Exception, SystemExit) as exc:
                failure = f"error running {entry_point}: {type(exc).__name__}: {exc}"
            else:
                self._apply_writes(trigger, api.take_writes())  # a failed call's writes are lost
                return True
            if behavior == "retry":
                # like InfluxDB 3: the same flush again, until it succeeds; said in the server's
                # output only. Stops when the trigger is disabled, deleted or the engine closes.
                logger.info("[%s] %s; retrying", trigger.definition.name, failure)
                runner = trigger.worker or trigger.scheduler
                if runner is None or runner.stopping:
                    return True
                if self._stop_flushing.wait(self._retry_pause_s) or self._is_disabled(trigger):
                    return not self._is_disabled(trigger)
                continue
            api.error(failure)
            if behavior == "disable":
                self._disable_after_failure(trigger)
                return False
            return True

    def _is_disabled(self, trigger: _Trigger) -> bool:
        with self._lock:
            return trigger.definition.disabled or self._triggers.get(trigger.key) is not trigger

    def _disable_after_failure(self, trigger: _Trigger) -> None:
        """``error_behavior=disable``: the trigger is disabled (and stays so) until enabled."""
        database, name = trigger.key
        try:
            self.set_disabled(database, name, True)
        except EngineError:  # deleted meanwhile
            return
        self._log(
            trigger, "ERROR", "trigger disabled after a failing call (error_behavior=disable)"
        )

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
                result = self._storage.write_lp(
                    database, "\n".join(lines), precision="ns", accept_partial=False
                )
            except StorageError as exc:  # e.g. write_to_db with an invalid database name
                self._log(trigger, "ERROR", f"plugin write to {database!r} failed: {exc}")
                continue
            if result.errors:  # accept_partial=false: nothing of this database was written
                first = result.errors[0]
                self._log(
                    trigger,
                    "ERROR",
                    f"plugin write to {database!r} rejected: all {len(lines)} line(s) lost "
                    f"(accept_partial=false); line {first.line_number}: {first.error_message}",
                )
                continue
            self.record_writes(database, result.rows, wait=False)

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
