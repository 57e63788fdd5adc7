"""The seed README's workflow with ``madcheck`` in place of ``influxdb3``, product plugins included.

``serve`` runs in a subprocess; the token, both triggers, the write and the log query go through
the CLI; the alert has to travel MAD plugin -> notifier request trigger -> a loopback webhook.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.engine_harness import (
    ServeProcess,
    Webhook,
    admin_auth,
    create_trigger,
    run_cli,
    wait_for,
)

REPO = Path(__file__).resolve().parents[1]


def _stream(path: Path) -> None:
    base = 1_700_000_000
    values = [20.0 + (i % 5) * 0.5 for i in range(25)] + [90.0] * 6
    path.write_text(
        "".join(f"cpu,host=a temp={v},load=1 {base + i}\n" for i, v in enumerate(values))
    )


def test_seed_commands_detect_and_deliver_an_alert(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    for name in ("mad_check_plugin.py", "notifier_plugin.py"):
        shutil.copy(REPO / "plugins" / name, plugin_dir / name)
    # the seed's config_file_path: found through PLUGIN_DIR, which `serve` sets to --plugin-dir
    (plugin_dir / "mad.toml").write_text('notification_count_text = "from TOML: $field on $tags"\n')
    lines = tmp_path / "cpu.lp"
    _stream(lines)

    with Webhook() as webhook, ServeProcess(tmp_path / "data", plugin_dir) as server:
        token, auth = admin_auth(server.url)
        port = server.url.rsplit(":", 1)[1]
        create_trigger(auth, "notifier_plugin.py", "request:notify", "notification_trigger")
        arguments = (
            "measurement=cpu,mad_thresholds=temp:2.5:20:5@load:3:10:2m,senders=http,"
            f"http_webhook_url={webhook.url},influxdb3_auth_token={token},port_override={port},"
            "config_file_path=mad.toml"
        )
        create_trigger(auth, "mad_check_plugin.py", "all_tables", "data_write_trigger", arguments)

        written = run_cli(
            "write", *auth, "--database", "mydb", "--precision", "s", "--file", str(lines)
        )
        assert written.returncode == 0, written.stderr
        wait_for(lambda: webhook.bodies, "the alert at the webhook")
        assert webhook.bodies[0]["notification_text"].startswith("from TOML: temp on host=")

        logs = run_cli(
            "query", *auth, "--database", "_internal",
            "SELECT trigger_name, log_level FROM system.processing_engine_logs",
        )  # fmt: skip
        assert logs.returncode == 0, logs.stderr
        assert "| data_write_trigger   | INFO" in logs.stdout
        assert "| notification_trigger | INFO" in logs.stdout
        assert token not in logs.stdout
        assert server.stop() == 0
    assert token not in "".join(server.output)
