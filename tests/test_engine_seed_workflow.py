"""The seed README's workflow with ``madcheck`` in place of ``influxdb3``, deployed as README says.

``serve`` runs in a subprocess; the token, the upload, both triggers, the write and the log query
go through the CLI; the alert has to travel MAD check -> notifier request trigger -> a loopback
webhook. The first test deploys the package directory (``--upload --path``), the way README's
Deploy section does; the second the two single files of an old server, with ``PLUGIN_DIR`` set
by hand as such a server needs for ``config_file_path``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import madcheck
from tests.engine_harness import (
    ServeProcess,
    Webhook,
    admin_auth,
    cli_env,
    create_trigger,
    run_cli,
    wait_for,
)

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(madcheck.__file__).parent


def _stream(path: Path) -> None:
    base = 1_700_000_000
    values = [20.0 + (i % 5) * 0.5 for i in range(25)] + [90.0] * 6
    path.write_text(
        "".join(f"cpu,host=a temp={v},load=1 {base + i}\n" for i, v in enumerate(values))
    )


def _run_seed_workflow(
    server: ServeProcess, webhook: Webhook, lines: Path, plugins: tuple[str, str], *upload: str
) -> str:
    token, auth = admin_auth(server.url)
    port = server.url.rsplit(":", 1)[1]
    notifier, mad_check = plugins
    create_trigger(auth, notifier, "request:notify", "notification_trigger", None, *upload)
    arguments = (
        "measurement=cpu,mad_thresholds=temp:2.5:20:5@load:3:10:2m,senders=http,"
        f"http_webhook_url={webhook.url},influxdb3_auth_token={token},port_override={port},"
        "config_file_path=mad.toml"
    )
    create_trigger(auth, mad_check, "all_tables", "data_write_trigger", arguments)

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
    assert "ERROR" not in logs.stdout
    assert token not in logs.stdout
    return token


def test_the_uploaded_package_directory_detects_and_delivers_an_alert(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    # config_file_path with PLUGIN_DIR unset: found in the plugin dir the package was loaded from
    (plugin_dir / "mad.toml").write_text('notification_count_text = "from TOML: $field on $tags"\n')
    lines = tmp_path / "cpu.lp"
    _stream(lines)

    with Webhook() as webhook, ServeProcess(tmp_path / "data", plugin_dir) as server:
        token = _run_seed_workflow(server, webhook, lines, (str(PACKAGE), "madcheck"), "--upload")
        assert server.stop() == 0
    assert token not in "".join(server.output)
    uploaded = {p.relative_to(plugin_dir).as_posix() for p in plugin_dir.rglob("*.py")}
    expected = {
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert uploaded == expected


def test_the_single_file_plugins_of_an_old_server_still_work(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    for name in ("mad_check_plugin.py", "notifier_plugin.py"):
        shutil.copy(REPO / "plugins" / name, plugin_dir / name)
    (plugin_dir / "mad.toml").write_text('notification_count_text = "from TOML: $field on $tags"\n')
    lines = tmp_path / "cpu.lp"
    _stream(lines)
    env = cli_env(PLUGIN_DIR=str(plugin_dir))  # a single file cannot tell where it was loaded

    with Webhook() as webhook, ServeProcess(tmp_path / "data", plugin_dir, env=env) as server:
        _run_seed_workflow(server, webhook, lines, ("notifier_plugin.py", "mad_check_plugin.py"))
        assert server.stop() == 0
