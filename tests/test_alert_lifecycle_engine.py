"""The alert lifecycle through the local engine: a firing and its recovery reach a webhook via the
notifier trigger, and both land in the alerts table, queryable with ``madcheck query``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from tests.engine_harness import (
    ServeProcess,
    Webhook,
    admin_auth,
    create_trigger,
    run_cli,
    wait_for,
)

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
# nine calm values (median 11, MAD 1: band 8..14 with k=3), two outliers that fire the count
# rule at T0+100, then three normal values: recovered at T0+130, 30 s after the firing
VALUES = [10, 12, 11, 13, 9, 11, 12, 10, 11, 100, 100, 11, 11, 11]


def test_recovery_through_the_engine_and_the_alerts_table(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    for name in ("mad_check_plugin.py", "notifier_plugin.py"):
        shutil.copy(REPO / "plugins" / name, plugin_dir / name)
    lines = tmp_path / "cpu.lp"
    lines.write_text(
        "".join(f"cpu,host=server1 temp={v} {T0 + 10 * i}\n" for i, v in enumerate(VALUES))
    )

    with Webhook() as webhook, ServeProcess(tmp_path / "data", plugin_dir) as server:
        token, auth = admin_auth(server.url)
        port = server.url.rsplit(":", 1)[1]
        create_trigger(
            auth,
            "notifier_plugin.py",
            "request:notify",
            "notification_trigger",
            f"allowed_webhook_hosts={urlsplit(webhook.url).netloc}",
        )
        arguments = (
            "measurement=cpu,mad_thresholds=temp:3:9:2,senders=http,"
            f"http_webhook_url={webhook.url},influxdb3_auth_token={token},port_override={port},"
            "notify_recovery=true,notification_recovery_text=resolved $alert_id after $duration"
        )
        create_trigger(auth, "mad_check_plugin.py", "table:cpu", "mad_trigger", arguments)
        written = run_cli(
            "write", *auth, "--database", "mydb", "--precision", "s", "--file", str(lines)
        )
        assert written.returncode == 0, written.stderr

        wait_for(lambda: len(webhook.bodies) >= 2, "the alert and its recovery at the webhook")
        result = run_cli(
            "query", *auth, "--database", "mydb", "--format", "json",
            "SELECT time, host, field, state, alert_id, value, duration_s FROM mad_alerts "
            "ORDER BY time",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert server.stop() == 0

    firing, resolved = json.loads(result.stdout)
    assert (firing["state"], resolved["state"]) == ("firing", "resolved")
    assert firing["alert_id"] == resolved["alert_id"]
    assert firing["host"] == "server1" and firing["field"] == "temp" and firing["value"] == 100
    assert resolved["value"] == 11 and resolved["duration_s"] == 30
    assert firing["duration_s"] is None
    assert firing["time"].startswith("2023-11-14T22:15:00")
    assert resolved["time"].startswith("2023-11-14T22:15:30")
    assert f"resolved {firing['alert_id']} after 30s" in json.dumps(webhook.bodies[1])
