"""Plugin loading as the engine does it: fresh globals on every call, edits seen at once."""

from __future__ import annotations

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
