"""``madcheck demo`` end to end, with the product's two plugins, as a user runs it."""

from __future__ import annotations

from tests.engine_harness import run_cli


def test_demo_shows_points_the_alert_at_the_webhook_and_the_log_table() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    first_anomaly = next(i for i, line in enumerate(lines) if "injected anomaly" in line)
    first_alert = next(i for i, line in enumerate(lines) if "ALERT reached the webhook" in line)
    assert first_anomaly < first_alert
    assert "MAD count alert: Field usage in cpu" in lines[first_alert]
    history = result.stdout.split("alert history (mad_alerts):", 1)[1]
    assert "| usage | count | firing |" in history.split("system.processing_engine_logs:")[0]
    table = result.stdout.split("system.processing_engine_logs:", 1)[1]
    assert "| notifier " in table and "http delivered (HTTP 200)" in table
    assert "alert sent to http" in table


def test_demo_exits_non_zero_when_no_alert_arrives() -> None:
    # five normal points: the 20-point window is not full until the anomaly is over
    result = run_cli("demo", "--points", "5", "--timeout", "0.5")
    assert result.returncode == 1
    assert "no alert reached the webhook" in result.stdout
