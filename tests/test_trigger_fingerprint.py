"""When a trigger rebuilds its config: exactly when something the config was built from changed.

The check runs on every call, so it looks only at the environment variables the config read
(``madcheck.plugin.trigger_state.Fingerprint``): those must rebuild it, and nothing else may.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from madcheck.plugin.trigger_state import Fingerprint, RecordingEnviron
from tests.support import make_engine, rows, run_mad_plugin

BASE = {
    "measurement": "cpu",
    "mad_thresholds": "temp:3:9:2",
    "senders": "http",
    "warm_start": "false",
}
HOOK = "http://127.0.0.1:9/hooks/alerts"


def loads(engine) -> int:
    return sum("configuration loaded" in line for line in engine.log_texts("INFO"))


def call(engine, args) -> None:
    run_mad_plugin(engine, [rows("cpu", [1.0], host="a")], args)


def test_only_the_variables_the_config_read_rebuild_it(monkeypatch):
    monkeypatch.setenv("MC_FP_HOOK", HOOK)
    monkeypatch.delenv("INFLUXDB3_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("MC_FP_UNRELATED", raising=False)
    engine = make_engine()
    args = {**BASE, "http_webhook_url": "env:MC_FP_HOOK"}
    call(engine, args)
    assert loads(engine) == 1

    monkeypatch.setenv("MC_FP_UNRELATED", "anything")  # read by nobody: same config
    call(engine, args)
    assert loads(engine) == 1

    monkeypatch.setenv("MC_FP_HOOK", HOOK + "/other")  # named by an argument
    call(engine, args)
    assert loads(engine) == 2

    monkeypatch.setenv("INFLUXDB3_AUTH_TOKEN", "apiv3_fp")  # a documented default, unset before
    call(engine, args)
    assert loads(engine) == 3
    call(engine, args)
    assert loads(engine) == 3


def test_a_variable_named_in_the_toml_file_rebuilds_the_config(tmp_path: Path, monkeypatch):
    (tmp_path / "mad.toml").write_text('http_webhook_url = "env:MC_FP_TOML_HOOK"\n')
    monkeypatch.setenv("PLUGIN_DIR", str(tmp_path))
    monkeypatch.setenv("MC_FP_TOML_HOOK", HOOK)
    engine = make_engine()
    args = {**BASE, "config_file_path": "mad.toml"}
    call(engine, args)
    call(engine, args)
    assert loads(engine) == 1
    monkeypatch.setenv("MC_FP_TOML_HOOK", HOOK + "/other")  # the file itself is unchanged
    call(engine, args)
    assert loads(engine) == 2

    monkeypatch.setenv("PLUGIN_DIR", str(tmp_path / "elsewhere"))  # the file is gone from there
    call(engine, args)
    assert "config_file_path 'mad.toml' not found" in engine.log_texts("ERROR")[-1]


def test_a_refused_config_waits_for_the_variable_it_named(monkeypatch):
    monkeypatch.delenv("MC_FP_MISSING", raising=False)
    engine = make_engine()
    args = {**BASE, "http_webhook_url": "env:MC_FP_MISSING"}
    call(engine, args)
    monkeypatch.setenv("MC_FP_UNRELATED", "x")
    call(engine, args)
    assert len(engine.log_texts("ERROR")) == 1  # still refused, not re-read nor re-logged
    monkeypatch.setenv("MC_FP_MISSING", HOOK)
    call(engine, args)
    assert loads(engine) == 1 and len(engine.log_texts("ERROR")) == 1


def test_a_build_that_read_the_whole_environment_depends_on_all_of_it(monkeypatch):
    monkeypatch.setenv("MC_FP_A", "1")
    environ = RecordingEnviron(os.environ)
    assert environ.get("MC_FP_A") == "1" and "MC_FP_NOT_SET" not in environ
    assert environ.seen == {"MC_FP_A": "1", "MC_FP_NOT_SET": None}
    named = Fingerprint.of({}, environ, None)
    sorted(environ)  # reading it whole
    whole = Fingerprint.of({}, environ, None)
    assert named.current({}, None) and whole.current({}, None)
    monkeypatch.setenv("MC_FP_B", "2")
    assert named.current({}, None) and not whole.current({}, None)
    monkeypatch.setenv("MC_FP_NOT_SET", "now set")
    assert not named.current({}, None)
    assert not named.current({"measurement": "cpu"}, None)


@pytest.mark.parametrize("args", [None, {}])
def test_calls_without_arguments_are_refused_once(args):
    engine = make_engine()
    call(engine, args)
    call(engine, args)
    assert len(engine.log_texts("ERROR")) == 1
