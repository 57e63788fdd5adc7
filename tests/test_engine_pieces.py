"""Small engine pieces whose edge cases users meet: arguments, specs, tokens, formats, responses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from madcheck.engine.auth import TokenStore, bearer_token
from madcheck.engine.formats import render
from madcheck.engine.server import HTTPError, plugin_response
from madcheck.engine.triggers import (
    TriggerSpec,
    TriggerSpecError,
    parse_trigger_arguments,
    parse_trigger_spec,
)


def test_trigger_arguments_split_on_every_comma_then_first_equals() -> None:
    assert parse_trigger_arguments(
        "measurement=cpu,mad_thresholds=temp:2.5:20:5@load:3:10:2m,url=http://h/?a=b"
    ) == {
        "measurement": "cpu",
        "mad_thresholds": "temp:2.5:20:5@load:3:10:2m",
        "url": "http://h/?a=b",
    }
    assert parse_trigger_arguments("quoted='a'") == {"quoted": "'a'"}
    assert parse_trigger_arguments(None) == {}
    with pytest.raises(ValueError, match="cannot contain one"):
        parse_trigger_arguments("senders=slack,discord")


def test_trigger_specs() -> None:
    assert parse_trigger_spec("all_tables") == TriggerSpec("writes")
    assert parse_trigger_spec("table:cpu").matches_table("cpu")
    assert not parse_trigger_spec("table:cpu").matches_table("mem")
    assert parse_trigger_spec("request:/a/b/") == TriggerSpec("request", path="a/b")
    for bad in ("every:10 parsecs", "cron:* * * * *", "tables", "table:", "request:/"):
        with pytest.raises(TriggerSpecError):
            parse_trigger_spec(bad)


def test_token_schemes_and_hashed_store(tmp_path: Path) -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("token abc") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None
    store = TokenStore(tmp_path / "tokens.json")
    token = store.create_first_admin_token()
    assert token is not None and store.is_valid(token)
    assert store.create_first_admin_token() is None
    assert token not in (tmp_path / "tokens.json").read_text()
    assert (tmp_path / "tokens.json").stat().st_mode & 0o077 == 0
    reopened = TokenStore(tmp_path / "tokens.json")
    assert reopened.is_valid(token) and not reopened.is_valid(token + "x")


def test_query_formats_cover_sparse_rows() -> None:
    rows = [{"host": "a", "v": 1.5}, {"host": "b,c", "ok": True}]
    assert json.loads(render(rows, "json")) == rows
    assert render(rows, "jsonl").splitlines() == [json.dumps(r) for r in rows]
    assert render(rows, "csv").splitlines() == ["host,v,ok", "a,1.5,", '"b,c",,true']
    assert render(rows, "pretty").splitlines() == [
        "+------+-----+------+",
        "| host | v   | ok   |",
        "+------+-----+------+",
        "| a    | 1.5 |      |",
        "| b,c  |     | true |",
        "+------+-----+------+",
    ]


def test_plugin_return_values_become_responses() -> None:
    as_json = plugin_response({"a": 1})
    assert (as_json.status, json.loads(as_json.body), as_json.content_type) == (
        200,
        {"a": 1},
        "application/json",
    )
    as_text = plugin_response("hello")
    assert (as_text.status, as_text.body) == (200, b"hello")
    with_status = plugin_response(([1, 2], 502, {"X-A": "b"}))
    assert (with_status.status, with_status.body, with_status.headers) == (
        502,
        b"[1, 2]",
        {"X-A": "b"},
    )
    with pytest.raises(HTTPError):
        plugin_response(("body", "not a status"))
