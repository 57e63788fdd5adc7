"""``config_file_path`` is a stranger's input: it may not leave the plugin dir, nor read forever.

Anyone with a token can create a trigger, so each test here is an attack on the argument: paths
out of the plugin dir (``..``, absolute, symbolic links), files that never end or never open,
and files whose contents must not be echoed into the log.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from madcheck.config import settings
from madcheck.config.settings import (
    MAX_CONFIG_FILE_BYTES,
    ConfigError,
    config_file_identity,
    load_config,
    read_config_file,
)
from tests.support import make_engine, rows, run_mad_plugin

BASE = {"measurement": "cpu", "mad_thresholds": "temp:3:9:2", "senders": "http"}
HOOK = "http://127.0.0.1:9/hooks/alerts"
SECRET_LINE = 'db_password = "hunter2-do-not-log-me"\n'


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir()
    (tmp_path / "outside.toml").write_text(SECRET_LINE + f'http_webhook_url = "{HOOK}"\n')
    return directory


def load(path: str, plugin_dir: Path, **extra: str) -> settings.LoadedConfig:
    return load_config(
        {**BASE, "config_file_path": path, **extra}, environ={}, plugin_dir=plugin_dir
    )


@pytest.mark.parametrize(
    "path",
    ["../outside.toml", "sub/../../outside.toml", "./../outside.toml", "'../outside.toml'"],
)
def test_dot_dot_cannot_leave_the_plugin_dir(plugin_dir, path):
    (plugin_dir / "sub").mkdir()
    with pytest.raises(ConfigError, match="outside the plugin directory") as refused:
        load(path, plugin_dir)
    assert "hunter2" not in str(refused.value) and "db_password" not in str(refused.value)


def test_a_symbolic_link_out_of_the_plugin_dir_is_refused(plugin_dir):
    (plugin_dir / "link.toml").symlink_to(plugin_dir.parent / "outside.toml")
    (plugin_dir / "zero.toml").symlink_to("/dev/zero")
    (plugin_dir / "etc").symlink_to("/etc")
    for path in ("link.toml", "zero.toml", "etc/passwd.toml"):
        with pytest.raises(ConfigError, match="config_file_path"):
            load(path, plugin_dir)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "relative to the plugin directory"),
        ("../../../../dev/zero", "a .toml file"),
        ("../../../../../proc/self/environ", "a .toml file"),
        ("missing.toml", "not found in the plugin directory"),
        ("loop.toml", "not found in the plugin directory"),
        ("folder.toml", "regular file"),
        ("fifo.toml", "regular file"),
        ("nul\x00.toml", "not found"),
        ("", None),  # empty: no file at all, the arguments alone
    ],
)
def test_paths_that_are_no_readable_toml_file_are_refused(plugin_dir, path, message):
    (plugin_dir / "loop.toml").symlink_to("loop.toml")
    (plugin_dir / "folder.toml").mkdir()
    os.mkfifo(plugin_dir / "fifo.toml")  # opening it for reading would block without O_NONBLOCK
    if message is None:
        with pytest.raises(ConfigError, match="no usable sender"):
            load(path, plugin_dir)
        return
    with pytest.raises(ConfigError, match=message) as refused:
        load(path, plugin_dir)
    assert "config_file_path" in str(refused.value) or "config file" in str(refused.value)


def test_a_file_without_end_is_read_at_most_one_mebibyte(plugin_dir):
    huge = plugin_dir / "huge.toml"
    with huge.open("wb") as handle:
        handle.truncate(1 << 30)  # a sparse 1 GiB file: no disk used, endless to a naive reader
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="larger than 1024 KiB"):
            load("huge.toml", plugin_dir)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_CONFIG_FILE_BYTES
    with pytest.raises(ConfigError, match="regular file"):
        read_config_file(Path("/dev/zero"))


def test_a_file_of_exactly_one_mebibyte_is_accepted(plugin_dir):
    body = f'http_webhook_url = "{HOOK}"\n'.encode()
    (plugin_dir / "big.toml").write_bytes(body + b"#" * (MAX_CONFIG_FILE_BYTES - len(body)))
    assert load("big.toml", plugin_dir).config.senders_config["http"]["http_webhook_url"] == HOOK


def test_errors_and_warnings_never_echo_the_files_contents_or_keys(plugin_dir):
    (plugin_dir / "keys.toml").write_text(
        SECRET_LINE + f'http_webhook_url = "{HOOK}"\nmesurement = "x"\n'
    )
    (plugin_dir / "broken.toml").write_text(SECRET_LINE + "api_key = hunter2-unquoted\n")
    (plugin_dir / "binary.toml").write_bytes(b"key = '\xff hunter2'\n")

    loaded = load("keys.toml", plugin_dir)
    warnings = " ".join(loaded.warnings)
    assert "2 key(s)" in warnings and "did you mean measurement" in warnings
    assert (
        "db_password" not in warnings and "hunter2" not in warnings and "mesurement" not in warnings
    )
    for name in ("broken.toml", "binary.toml"):
        with pytest.raises(ConfigError) as refused:
            load(name, plugin_dir)
        text = str(refused.value)
        assert "hunter2" not in text and "api_key" not in text and "db_password" not in text
        assert "config_file_path" in text


def test_plugin_dir_is_used_when_plugin_dir_is_unset_and_the_error_says_what_to_set(plugin_dir):
    (plugin_dir / "mad.toml").write_text(f'http_webhook_url = "{HOOK}"\n')
    assert load("mad.toml", plugin_dir).config.sender_names == ["http"]
    with pytest.raises(ConfigError, match="set PLUGIN_DIR"):
        load_config({**BASE, "config_file_path": "mad.toml"}, environ={})
    other = plugin_dir.parent / "other"
    other.mkdir()
    (other / "mad.toml").write_text('http_webhook_url = "http://127.0.0.1:10/x"\n')
    chosen = load_config(
        {**BASE, "config_file_path": "mad.toml"},
        environ={"PLUGIN_DIR": str(other)},
        plugin_dir=plugin_dir,
    )
    assert chosen.config.senders_config["http"]["http_webhook_url"] == "http://127.0.0.1:10/x"


def test_the_identity_follows_the_same_resolution_and_never_reads(plugin_dir, monkeypatch):
    target = plugin_dir / "mad.toml"
    target.write_text(f'http_webhook_url = "{HOOK}"\n')
    (plugin_dir / "alias.toml").symlink_to("mad.toml")
    monkeypatch.setattr(settings, "read_config_file", lambda path: pytest.fail("read"))
    direct = config_file_identity("mad.toml", {}, plugin_dir)
    assert config_file_identity("alias.toml", {}, plugin_dir) == direct
    assert config_file_identity("../outside.toml", {}, plugin_dir)[0] == "refused"
    assert config_file_identity("mad.toml", {}, None)[0] == "refused"


def test_a_refused_file_is_logged_once_and_not_read_again_until_it_changes(plugin_dir, monkeypatch):
    monkeypatch.setenv("PLUGIN_DIR", str(plugin_dir))
    big = plugin_dir / "mad.toml"
    big.write_bytes(b"#" * (MAX_CONFIG_FILE_BYTES + 10))
    reads = []
    original = settings.read_config_file
    monkeypatch.setattr(
        settings, "read_config_file", lambda path: reads.append(path) or original(path)
    )
    engine = make_engine()
    args = {**BASE, "config_file_path": "mad.toml", "warm_start": "false"}

    for _ in range(5):
        run_mad_plugin(engine, [rows("cpu", [1, 2, 3], host="a")], args)
    errors = engine.log_texts("ERROR")
    assert len(errors) == 1 and "larger than 1024 KiB" in errors[0]
    assert len(reads) == 1

    big.write_text(f'http_webhook_url = "{HOOK}"\n')  # fixed: read again, loaded
    run_mad_plugin(engine, [rows("cpu", [1, 2, 3], host="a")], args)
    assert len(reads) == 2
    assert any("configuration loaded" in line for line in engine.log_texts("INFO"))
