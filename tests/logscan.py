"""The session-wide log collector behind ``test_log_secrets.py``.

``install()`` (called from ``conftest.py`` before any test module is imported) wraps, for the
whole session:

- ``EngineAPI._log``: every ``influxdb3_local.info|warn|error`` line of every engine object, the
  plugins' and the local server's alike, lands in ``LINES`` with the test that produced it;
- ``Storage.append_logs``: every line the local engine stores in
  ``system.processing_engine_logs``, including its own lines about triggers;
- the root ``logging`` logger (WARNING and above, its default), for any library code that logs
  the usual Python way;
- the two plugin entry points, so the secrets each call receives are harvested (``tests.secrets``)
  before the call runs.

``test_no_secret_in_any_log_line_of_the_session`` runs last (``conftest.py`` moves it there) and
scans ``LINES`` for ``SECRETS``. Lines of subprocesses (a ``madcheck serve`` started by a test) are
not seen; their tests must check their own output.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

from tests import secrets


@dataclass(frozen=True)
class Line:
    test: str
    level: str
    text: str


LINES: list[Line] = []


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)").rsplit(" ", 1)[0]


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is not this collector's business
            text = str(record.msg)
        LINES.append(Line(_current_test(), record.levelname, text))


def install() -> None:
    from madcheck.engine.api import EngineAPI

    original_log = EngineAPI._log

    @functools.wraps(original_log)
    def collecting_log(self: EngineAPI, level: str, args: tuple[object, ...]) -> None:
        original_log(self, level, args)
        LINES.append(Line(_current_test(), level, self.logs[-1].log_text))

    EngineAPI._log = collecting_log  # type: ignore[method-assign]

    from madcheck.engine.storage import Storage

    original_append = Storage.append_logs

    @functools.wraps(original_append)
    def collecting_append(self: Storage, database: str, records: Any) -> None:
        batch = list(records)
        LINES.extend(Line(_current_test(), r.log_level, r.log_text) for r in batch)
        original_append(self, database, batch)

    Storage.append_logs = collecting_append  # type: ignore[method-assign]

    root = logging.getLogger()
    root.addHandler(_Collect(level=logging.DEBUG))

    import madcheck.plugin.writes as writes

    original_writes = writes.process_writes

    @functools.wraps(original_writes)
    def harvesting_writes(
        engine: Any, table_batches: Any, args: Any = None, **options: Any
    ) -> None:
        secrets.harvest_arguments(args)
        original_writes(engine, table_batches, args, **options)

    writes.process_writes = harvesting_writes

    import madcheck.plugin.missing as missing

    original_scheduled = missing.process_scheduled_call

    @functools.wraps(original_scheduled)
    def harvesting_scheduled(engine: Any, call_time: Any, args: Any = None, **options: Any) -> None:
        secrets.harvest_arguments(args)
        original_scheduled(engine, call_time, args, **options)

    missing.process_scheduled_call = harvesting_scheduled

    import madcheck.plugin.notifier as notifier

    original_request = notifier.process_request

    @functools.wraps(original_request)
    def harvesting_request(
        engine: Any, query: Any, headers: Any, body: Any, args: Any = None
    ) -> Any:
        secrets.harvest_arguments(args)
        secrets.harvest_request_body(body)
        return original_request(engine, query, headers, body, args)

    notifier.process_request = harvesting_request
