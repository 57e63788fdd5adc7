"""Plugin loading as the engine does it: a file in fresh globals on every call, edits seen at once;
a directory imported once under its own name, as InfluxDB 3 imports a ``--path`` plugin."""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

import pytest

import madcheck
from madcheck.engine.loader import load_entry_point


def test_every_call_gets_fresh_globals(tmp_path):
    plugin = tmp_path / "counter.py"
    plugin.write_text(
        "calls = []\n"
        "def process_writes(influxdb3_local, table_batches, args=None):\n"
        "    calls.append(1)\n"
        "    return len(calls)\n"
    )
    first = load_entry_point(plugin, "process_writes")
    second = load_entry_point(plugin, "process_writes")
    assert first(None, []) == 1
    assert second(None, []) == 1  # module state does not survive into the next call
    assert first.__globals__ is not second.__globals__


def test_an_edit_takes_effect_at_the_next_call_even_with_the_same_size(tmp_path):
    plugin = tmp_path / "answer.py"
    plugin.write_text(
        "def process_writes(influxdb3_local, table_batches, args=None):\n    return 1\n"
    )
    assert load_entry_point(plugin, "process_writes")(None, []) == 1
    plugin.write_text(
        "def process_writes(influxdb3_local, table_batches, args=None):\n    return 2\n"
    )
    assert load_entry_point(plugin, "process_writes")(None, []) == 2


def test_a_directory_is_imported_under_its_own_name_with_its_parent_on_sys_path_only_meanwhile(
    tmp_path, monkeypatch
):
    package = tmp_path / "plugin_dir" / "loader_probe_pkg"
    package.mkdir(parents=True)
    (package / "helper.py").write_text("VALUE = 'from a sibling module'\n")
    (package / "__init__.py").write_text(
        "import sys\n"
        "PATH_AT_IMPORT = list(sys.path)\n"
        "def process_writes(influxdb3_local, table_batches, args=None):\n"
        "    from .helper import VALUE\n"
        "    return __name__, VALUE\n"
    )
    monkeypatch.delitem(sys.modules, "loader_probe_pkg", raising=False)
    path_before = list(sys.path)

    function = load_entry_point(package, "process_writes")

    module = sys.modules["loader_probe_pkg"]
    assert module.PATH_AT_IMPORT[0] == str(package.parent)
    assert sys.path == path_before
    assert function(None, []) == ("loader_probe_pkg", "from a sibling module")
    assert load_entry_point(package, "process_writes") is function  # imported once, cached


def test_a_directory_without_init_or_entry_point_is_refused_by_name(tmp_path):
    empty = tmp_path / "loader_probe_empty"
    empty.mkdir()
    with pytest.raises(ImportError, match=r"must contain __init__\.py"):
        load_entry_point(empty, "process_writes")
    (empty / "__init__.py").write_text("")
    with pytest.raises(LookupError, match="does not define process_request"):
        load_entry_point(empty, "process_request")


def test_a_madcheck_folder_in_the_local_engine_is_told_its_plugin_dir(tmp_path):
    # One interpreter holds one `madcheck`: the folder resolves to the package this process runs
    # from, so the loader passes the folder's parent as the plugin dir config files live in.
    copy = tmp_path / "madcheck"
    shutil.copytree(Path(madcheck.__file__).parent, copy)
    function = load_entry_point(copy, "process_writes")
    assert isinstance(function, functools.partial)
    assert function.func is madcheck.process_writes
    assert function.keywords == {"plugin_dir": tmp_path}
