"""Session-wide hooks: the log collector for the secret scan, and that scan placed last."""

from __future__ import annotations

import pytest

from tests import logscan

FINAL_SCAN = "test_no_secret_in_any_log_line_of_the_session"


def pytest_configure(config: pytest.Config) -> None:
    logscan.install()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the secret scan after every other selected test, whatever the file order."""
    final = [item for item in items if item.name == FINAL_SCAN]
    items[:] = [item for item in items if item.name != FINAL_SCAN] + final
