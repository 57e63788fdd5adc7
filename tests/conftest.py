"""Session-wide hooks: the log collector for the secret scan, that scan placed last, and the
Hypothesis profile.

Under CI (``CI`` set) Hypothesis runs derandomized: the same examples every run, so a submission's
result does not depend on the luck of a seed. Run locally without ``CI`` to explore new ones.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests import logscan

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

FINAL_SCAN = "test_no_secret_in_any_log_line_of_the_session"


def pytest_configure(config: pytest.Config) -> None:
    logscan.install()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the secret scan after every other selected test, whatever the file order."""
    final = [item for item in items if item.name == FINAL_SCAN]
    items[:] = [item for item in items if item.name != FINAL_SCAN] + final
