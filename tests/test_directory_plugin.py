"""The package directory is the plugin: copied into an empty plugin dir, it runs every trigger:
the MAD check's data-writes and scheduled (missing-data) entry points and the notifier.

The run happens in a separate ``python -I -S`` (no site-packages, so no installed madcheck, no
rich or matplotlib), with only ``requests`` and its dependencies linked in, loaded the way
InfluxDB 3 loads a ``--path`` directory plugin (see ``tests/directory_plugin_host.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

import madcheck
from madcheck.config.settings import ConfigError, load_config
from tests.engine_harness import WAIT_CEILING_S, Webhook

HOST_SCRIPT = Path(__file__).with_name("directory_plugin_host.py")
REQUESTS_AND_DEPENDENCIES = ("requests", "urllib3", "idna", "charset_normalizer", "certifi")


def _site_with_requests_only(folder: Path) -> Path:
    """A folder holding links to ``requests`` and what it imports, nothing else."""
    folder.mkdir()
    site_packages = Path(requests.__file__).parents[1]
    for name in REQUESTS_AND_DEPENDENCIES:
        (folder / name).symlink_to(site_packages / name, target_is_directory=True)
    for compiled in site_packages.glob("*__mypyc*"):  # charset_normalizer's compiled helper
        (folder / compiled.name).symlink_to(compiled)
    return folder


def _copy_package(plugin_dir: Path) -> Path:
    package = Path(madcheck.__file__).parent
    target = plugin_dir / "madcheck"
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_the_copied_package_runs_both_mad_entry_points_and_the_notifier_with_only_requests(
    tmp_path: Path,
) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    copy = _copy_package(plugin_dir)
    # config_file_path with PLUGIN_DIR unset (InfluxDB 3 never sets it): found in the plugin dir
    (plugin_dir / "mad.toml").write_text('notification_count_text = "from TOML: $field $tags"\n')
    site = _site_with_requests_only(tmp_path / "site")

    with Webhook() as webhook:
        completed = subprocess.run(
            [sys.executable, "-I", "-S", str(HOST_SCRIPT), str(plugin_dir), str(site),
             webhook.url],
            capture_output=True, text=True, timeout=WAIT_CEILING_S * 2, check=False,
            env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        report = json.loads(completed.stdout)
        bodies = list(webhook.bodies)

    assert report["installed_before_loading"] is False
    assert len(report["run_alone_logs"]) == 1
    assert report["run_alone_logs"][0].startswith("ERROR: mad_check: the engine ran madcheck/")
    assert "--path madcheck" in report["run_alone_logs"][0]
    assert Path(report["madcheck_file"]) == copy / "__init__.py"
    assert report["path_entry_left"] is False
    assert report["light_import"] == []  # loading the package imports none of its modules
    assert report["notifier_answered"] == 200, report
    assert report["scheduled_answered"] == 200, report
    assert set(report["third_party_modules"]) <= {"madcheck", *REQUESTS_AND_DEPENDENCIES}
    assert not [line for line in report["mad_logs"] if line.startswith("ERROR")], report
    assert not [line for line in report["scheduled_logs"] if line.startswith("ERROR")], report
    assert any("missing_after=5m" in line for line in report["scheduled_logs"]), report
    assert any("http delivered" in line for line in report["notifier_logs"]), report
    assert len(bodies) == 2
    assert bodies[0]["notification_text"].startswith("from TOML: temp host=a")
    # the scheduled entry point: host a's last point is 10 minutes before the call
    assert bodies[1]["notification_text"] == (
        "MAD missing data: no data in cpu for 10m (last point 2023-11-14T22:13:20Z). Tags: host=a"
    )
    assert (bodies[1]["alert"]["rule"], bodies[1]["alert"]["state"]) == ("missing", "firing")
    (history,) = report["scheduled_history"]
    assert history.startswith("mad_alerts,host=a,rule=missing,state=firing,")


def test_importing_madcheck_imports_neither_its_modules_nor_heavy_libraries() -> None:
    probe = (
        "import sys, madcheck\n"
        "heavy = ('requests', 'rich', 'matplotlib', 'numpy', 'madcheck.')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"


SEED_ARGUMENTS = {
    "measurement": "cpu",
    "mad_thresholds": "temp:2.5:20:5",
    "senders": "http",
    "http_webhook_url": "http://127.0.0.1:9/hook",
    "config_file_path": "mad.toml",
}


def test_config_file_is_found_in_the_plugin_dir_unless_plugin_dir_env_says_otherwise(
    tmp_path: Path,
) -> None:
    loaded_from, configured = tmp_path / "loaded", tmp_path / "configured"
    for folder, window in ((loaded_from, 30), (configured, 40)):
        folder.mkdir()
        (folder / "mad.toml").write_text(f'mad_thresholds = "temp:2.5:{window}:5"\n')

    from_package = load_config(SEED_ARGUMENTS, environ={}, plugin_dir=loaded_from)
    from_env = load_config(
        SEED_ARGUMENTS, environ={"PLUGIN_DIR": str(configured)}, plugin_dir=loaded_from
    )

    assert [t.window_count for t in from_package.config.thresholds] == [30]
    assert [t.window_count for t in from_env.config.thresholds] == [40]


def test_without_a_plugin_dir_the_error_says_what_to_set() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(SEED_ARGUMENTS, environ={})
    assert "PLUGIN_DIR" in str(raised.value)
    assert "directory plugin" in str(raised.value)
