"""The local engine's safe defaults: loopback only, a token for every route, bounded requests."""

from __future__ import annotations

import argparse
from pathlib import Path

import requests

from madcheck.engine import commands
from madcheck.engine.server import EngineServer, ServerConfig
from tests.secrets import secret


def test_serve_listens_on_loopback_unless_told_otherwise():
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    options = parser.parse_args(["serve", "--data-dir", "d", "--plugin-dir", "p"])
    assert options.http_bind == "127.0.0.1:8181"
    assert options.without_auth is False
    assert ServerConfig(Path("d"), Path("p")).host == "127.0.0.1"


def test_every_route_needs_a_token_and_large_bodies_are_refused(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    server = EngineServer(ServerConfig(tmp_path / "data", plugins, port=0, max_request_bytes=1000))
    server.start()
    try:
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        token = secret(server.tokens.create_token())
        routes = [
            ("post", "/api/v3/write_lp?db=db", "cpu v=1"),
            ("get", "/api/v3/query_sql?db=db&q=SELECT+1", None),
            ("post", "/api/v3/engine/notify", "{}"),
            ("post", "/api/v3/configure/processing_engine_trigger", "{}"),
        ]
        for method, path, body in routes:
            anonymous = requests.request(method, url + path, data=body, timeout=5)
            assert anonymous.status_code == 401, path
            wrong = requests.request(
                method, url + path, data=body, timeout=5, headers={"Authorization": "Bearer x"}
            )
            assert wrong.status_code == 401, path
        auth = {"Authorization": f"Bearer {token}"}
        written = requests.post(
            url + "/api/v3/write_lp?db=db", data="cpu v=1", headers=auth, timeout=5
        )
        assert written.status_code == 204
        too_big = requests.post(
            url + "/api/v3/write_lp?db=db", data="cpu v=1\n" * 200, headers=auth, timeout=5
        )
        assert too_big.status_code == 413
        assert token not in too_big.text and token not in written.text
    finally:
        server.stop()
