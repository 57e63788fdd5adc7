"""A replay pass: read every file once, batch the rows, hand each batch to the plugin.

The first pass runs the plugin (one trigger, or one per combination of a sweep, all fed the same
batches so reading and parsing are paid once); the per-series counts come from the plugin's own
detector (``StatsObserver``). ``--plot`` adds a second pass over the same files that runs the
same detector class, without the plugin, and follows only the series that alerted, value by
value: the first pass cannot know which series those are, and keeping every series' values in
memory would make memory grow with the file instead of with the detector state.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from madcheck.config.settings import Config
from madcheck.detect.alerts import Tags
from madcheck.detect.detector import Detector, VerdictObserver
from madcheck.engine.catalog import SchemaQueries
from madcheck.replay.alerts import HELD_STATES, RESOLVED, AlertRecord
from madcheck.replay.arguments import is_captured
from madcheck.replay.capture import CaptureClient
from madcheck.replay.incidents import DataSpan
from madcheck.replay.inputs import InputError, InputFile, InputOptions, SeriesLines
from madcheck.replay.noise import ReplayCatalog
from madcheck.replay.stats import SeriesStats, StatsObserver
from madcheck.replay.stream import Admission, Admitted, Batch, StreamCounts, batches
from madcheck.replay.trigger import ReplayTrigger

if TYPE_CHECKING:  # the passes only call it; importing it would tie them to the terminal
    from madcheck.replay.console import ReplayConsole

AlertSink = Callable[[AlertRecord], None]
#: sees every trigger's records first, by trigger position; False keeps one out of the pass's
#: counts and ``on_alert`` (the incidents' internal recovery rows, see replay/incidents.py)
RecordTap = Callable[[int, AlertRecord], bool]

#: longest wait, at the end of a pass, for a trigger's notifications to be posted
DELIVERY_WAIT_S = 60.0


@dataclass(frozen=True)
class PassSettings:
    """What every pass over the input shares."""

    files: tuple[Path, ...]
    inputs: InputOptions
    config: Config
    plugin: Path
    #: None: batches close by size only (the plugin's results do not depend on batching)
    flush_interval_ns: int | None = None
    max_batch_rows: int = 50_000
    #: rows of the silences table the plugin reads (``--silences``), newest first
    silences: tuple[dict[str, object], ...] = ()


@dataclass
class TriggerTotals:
    """Alerts one replayed trigger recorded."""

    fired: int = 0
    suppressed: int = 0
    resolved: int = 0
    #: alerts noise control did not send, by state (inhibited, silenced, capped)
    held: Counter[str] = field(default_factory=Counter)
    #: what the trigger queued for the notifier: one per alert or recovery sent on its own, one
    #: per group or storm summary (set when the pass ends)
    notifications: int = 0
    alerting: set[str] = field(default_factory=set)

    def count(self, record: AlertRecord) -> None:
        if record.state == RESOLVED:
            self.resolved += 1
            return
        if record.suppressed:
            self.suppressed += 1
        elif record.state in HELD_STATES:
            self.held[record.state] += 1
        else:
            self.fired += 1
        self.alerting.add(record.alert_id)


@dataclass
class PassResult:
    counts: StreamCounts
    batches: int
    seconds: float
    stats: dict[str, SeriesStats]
    totals: list[TriggerTotals]
    span: DataSpan = field(default_factory=DataSpan)


class BatchSource:
    """The flush batches of every input file in turn, with progress by bytes read."""

    def __init__(
        self,
        settings: PassSettings,
        console: ReplayConsole,
        catalog: SchemaQueries,
        report_bad_lines: bool = True,
        only: SeriesLines | None = None,
    ) -> None:
        self.settings = settings
        self.console = console
        self.catalog = catalog
        self.files = [InputFile(path) for path in settings.files]
        on_bad_line = console.bad_line if report_bad_lines else _ignore_bad_line
        self.admission = Admission(settings.inputs.measurement, on_bad_line)
        self._only = only
        self._done_bytes = 0
        self._current: InputFile | None = None

    @property
    def counts(self) -> StreamCounts:
        return self.admission.counts

    def _rows(self) -> Iterator[Admitted]:
        for source in self.files:
            self._current = source
            try:
                yield from self.admission.rows(
                    str(source.path), source.items(self.settings.inputs, self._only)
                )
            except InputError as error:
                self.console.note(f"{source.path}: {error}; the rest of this file is skipped")
            self._done_bytes += source.size
            self._current = None

    def _position(self) -> int:
        current = self._current
        return self._done_bytes + (current.position if current is not None else 0)

    def read(self, label: str) -> Iterator[tuple[Batch, list[str]]]:
        """Each batch with the table's tag names, sorted, as the plugin's schema query sees
        them once the batch has been written."""
        settings = self.settings
        measurement = settings.inputs.measurement
        catalog = self.catalog
        catalog.add_columns(measurement)
        total = sum(f.size for f in self.files)
        with self.console.progress(total, label) as update:
            flushes = batches(self._rows(), settings.flush_interval_ns, settings.max_batch_rows)
            for number, batch in enumerate(flushes):
                catalog.add_columns(measurement, batch.new_tags, batch.new_fields)
                yield batch, sorted(catalog.tables[measurement]["tags"])
                if number % 16 == 0:
                    update(self._position())


def _ignore_bad_line(source: str, line_number: int, message: str) -> None:
    """A later pass over the same files: their bad lines were reported the first time."""


def replay_pass(
    settings: PassSettings,
    console: ReplayConsole,
    arguments: Sequence[dict[str, str]],
    on_alert: AlertSink | None = None,
    track: bool = True,
    tap: RecordTap | None = None,
) -> PassResult:
    """Run one trigger per entry of ``arguments`` over the input; ``on_alert`` receives the
    first trigger's alerts as they are recorded, ``track`` keeps per-series counts (from the
    first trigger's detector), ``tap`` sees every trigger's records first."""
    measurement = settings.inputs.measurement
    catalog = ReplayCatalog(settings.config.noise.silences_table, settings.silences)
    catalog.add_columns(measurement)
    source = BatchSource(settings, console, catalog)
    observer = StatsObserver(measurement) if track else None
    triggers = [
        ReplayTrigger(
            settings.plugin,
            args,
            measurement,
            catalog,
            console.plugin_log,
            observer if position == 0 else None,
            CaptureClient() if is_captured(args) else None,
        )
        for position, args in enumerate(arguments)
    ]
    totals = [TriggerTotals() for _ in triggers]
    stats = observer.stats if observer is not None else {}
    started = time.perf_counter()
    flushes = 0
    span = DataSpan()
    for batch, _ in source.read("replaying"):
        flushes += 1
        span.add(batch.rows)
        for position, (trigger, total) in enumerate(zip(triggers, totals, strict=True)):
            for record in trigger.call(batch.rows):
                if tap is not None and not tap(position, record):
                    continue
                total.count(record)
                if position:
                    continue
                series = stats.get(record.alert_id)
                if series is not None:
                    series.count(record.state)
                    if record.tags != series.tags or record.field != series.field:
                        # the history may have to write a tag or field name differently (one
                        # holding a space or a control character, say); the series' own names
                        # are those the detector saw
                        record = replace(record, tags=series.tags, field=series.field)
                if on_alert is not None:
                    on_alert(record)
    for trigger, total in zip(triggers, totals, strict=True):
        total.notifications = trigger.finish(DELIVERY_WAIT_S)
    return PassResult(source.counts, flushes, time.perf_counter() - started, stats, totals, span)


def trace_pass(
    settings: PassSettings, console: ReplayConsole, observer: VerdictObserver, series: set[Tags]
) -> None:
    """The charted ``series`` again, value by value, through the detector the plugin uses (same
    configuration, same tag names), with ``observer`` tracing them. Only their lines are parsed
    (``SeriesLines``): a series' verdicts depend on its own rows, not on how rows are batched."""
    config = settings.config
    detector = Detector(
        config.measurement,
        config.thresholds,
        config.state_change_count,
        config.recovery_count if config.notify_recovery else 0,
    )
    detector.observer = observer
    only = SeriesLines(settings.inputs.measurement, series)
    source = BatchSource(settings, console, SchemaQueries(), report_bad_lines=False, only=only)
    for batch, tag_names in source.read("charting"):
        detector.process(batch.rows, tag_names)
