"""``madcheck serve`` end to end: a subprocess, the CLI, real sockets on 127.0.0.1.

Test plugins stand in for the product's plugins here so that each engine behaviour (batching,
plugin writes, logs, errors, request triggers) is visible on its own; the product plugins are run
end to end by ``test_cli_demo.py``.
"""

from __future__ import annotations

import gzip
import json
import signal
from pathlib import Path

import pytest
import requests

from tests.engine_harness import ServeProcess, Webhook, log_texts, query, run_cli, wait_for

RECORDER = """
import json
import urllib.request


def process_writes(influxdb3_local, table_batches, args=None):
    for batch in table_batches:
        table = batch["table_name"]
        if table == "seen":
            continue
        for row in batch["rows"]:
            if row.get("boom"):
                raise RuntimeError("boom in plugin")
            value = row.get("value")
            influxdb3_local.info(f"saw {table} value={value} label={args['label']}")
            influxdb3_local.write(LineBuilder("seen").tag("src", table).float64_field("v", value))
            if value > 100:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{args['port']}/api/v3/engine/alert",
                    data=json.dumps({"text": f"{table} value {value}"}).encode(),
                    headers={"Authorization": "Bearer " + args["token"]},
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=10) as answer:
                    influxdb3_local.info("alert relay answered", answer.status)
"""

RELAY = """
import json
import urllib.request


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    if query_parameters.get("echo"):
        return {"query": query_parameters, "headers": request_headers,
                "body": request_body.decode(), "args": args}
    if query_parameters.get("teapot"):
        return ("short and stout", 418, {"X-Kind": "teapot"})
    message = json.loads(request_body)
    request = urllib.request.Request(args["webhook"], data=json.dumps(message).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    influxdb3_local.info("relayed", message["text"])
    return {"status": "ok"}
"""


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "recorder.py").write_text(RECORDER)
    (folder / "relay.py").write_text(RELAY)
    return folder


def test_seed_workflow_with_auth_survives_sigterm_and_restart(
    tmp_path: Path, plugin_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    with Webhook() as webhook, ServeProcess(data_dir, plugin_dir) as server:
        url = server.url
        assert requests.get(f"{url}/api/v3/query_sql?db=x&q=SELECT+1", timeout=5).status_code == 401

        created = run_cli("create", "token", "--admin", "--host", url)
        assert created.returncode == 0, created.stderr
        token = created.stdout.split("Token: ", 1)[1].split()[0]
        again = run_cli("create", "token", "--admin", "--host", url)
        assert again.returncode == 1 and "already exists" in again.stderr

        refused = run_cli("query", "--host", url, "--token", "wrong", "-d", "db", "SELECT 1")
        assert refused.returncode == 1 and "token was refused" in refused.stderr
        assert "wrong" not in refused.stderr
        auth = ("--host", url, "--token", token)
        port = url.rsplit(":", 1)[1]
        for args in (
            ("--plugin-filename", "relay.py", "--trigger-spec", "request:alert",
             "--trigger-arguments", f"webhook={webhook.url}", "relay"),
            ("--plugin-filename", "recorder.py", "--trigger-spec", "all_tables",
             "--trigger-arguments", f"label=a=b,port={port},token={token}", "recorder"),
        ):  # fmt: skip
            result = run_cli("create", "trigger", *auth, "--database", "mydb", *args)
            assert result.returncode == 0, result.stderr

        written = run_cli("write", *auth, "--database", "mydb", "cpu,host=a value=1.5 1000000000")
        assert written.returncode == 0, written.stderr
        wait_for(
            lambda: any("saw cpu value=1.5 label=a=b" in t for t in log_texts(url, "mydb", token)),
            "the recorder's log",
        )
        # the plugin's own write was applied after its call and is queryable
        seen = wait_for(
            lambda: query(url, "mydb", "SELECT src, v FROM seen", token), "plugin write"
        )
        assert seen == [{"src": "cpu", "v": 1.5}]

        # an outlier travels plugin -> request trigger -> webhook
        headers = {"Authorization": f"Token {token}"}
        requests.post(
            f"{url}/api/v3/write_lp?db=mydb",
            data="cpu,host=a value=250",
            headers=headers,
            timeout=5,
        ).raise_for_status()
        wait_for(lambda: webhook.bodies, "the alert at the webhook")
        assert webhook.bodies == [{"text": "cpu value 250.0"}]

        # a plugin exception is an ERROR log line, and the trigger keeps running
        def errors() -> list[str]:
            sql = "SELECT log_text FROM system.processing_engine_logs WHERE log_level = 'ERROR'"
            return [row["log_text"] for row in query(url, "mydb", sql, token)]

        requests.post(
            f"{url}/api/v3/write_lp?db=mydb",
            data="cpu boom=true,value=0",
            headers=headers,
            timeout=5,
        ).raise_for_status()
        wait_for(errors, "the plugin's error to be logged")
        assert errors() == ["error running process_writes: RuntimeError: boom in plugin"]
        requests.post(
            f"{url}/api/v3/write_lp?db=mydb", data="cpu value=7", headers=headers, timeout=5
        ).raise_for_status()
        wait_for(
            lambda: any("value=7" in t for t in log_texts(url, "mydb", token)),
            "the trigger to run again",
        )

        # partial write: valid lines kept, the bad one reported with its number
        partial = requests.post(
            f"{url}/api/v3/write_lp?db=mydb",
            data="mem,h=1 used=1\nmem used=\nmem,h=3 used=3",
            headers=headers,
            timeout=5,
        )
        assert partial.status_code == 400
        body = partial.json()
        assert body["error"] == "partial write of line protocol occurred"
        assert [(e["line_number"], e["original_line"]) for e in body["data"]] == [(2, "mem used=")]
        assert sorted(r["used"] for r in query(url, "mydb", "SELECT used FROM mem", token)) == [
            1.0,
            3.0,
        ]

        # request triggers: the plugin sees parameters, lower-cased headers without Authorization
        echo = requests.post(
            f"{url}/api/v3/engine/alert?echo=1",
            data=b"hi",
            headers={**headers, "X-Custom": "v"},
            timeout=5,
        )
        assert echo.status_code == 200
        assert echo.json()["query"] == {"echo": "1"} and echo.json()["body"] == "hi"
        assert (
            echo.json()["headers"]["x-custom"] == "v"
            and "authorization" not in echo.json()["headers"]
        )
        teapot = requests.get(f"{url}/api/v3/engine/alert?teapot=1", headers=headers, timeout=5)
        assert (teapot.status_code, teapot.text, teapot.headers["X-Kind"]) == (
            418,
            "short and stout",
            "teapot",
        )
        assert (
            requests.get(f"{url}/api/v3/engine/nowhere", headers=headers, timeout=5).status_code
            == 404
        )
        assert requests.get(f"{url}/api/v3/engine/alert?echo=1", timeout=5).status_code == 401

        assert run_cli("disable", "trigger", *auth, "-d", "mydb", "relay").returncode == 0
        assert (
            requests.get(
                f"{url}/api/v3/engine/alert?echo=1", headers=headers, timeout=5
            ).status_code
            == 404
        )
        assert run_cli("enable", "trigger", *auth, "-d", "mydb", "relay").returncode == 0
        assert (
            requests.get(
                f"{url}/api/v3/engine/alert?echo=1", headers=headers, timeout=5
            ).status_code
            == 200
        )

        bad_sql = run_cli("query", *auth, "-d", "mydb", "SELEC nonsense")
        assert bad_sql.returncode == 1 and "HTTP 400" in bad_sql.stderr

        # acknowledged writes right before SIGTERM still reach the trigger
        for value in range(20, 30):
            requests.post(
                f"{url}/api/v3/write_lp?db=mydb",
                data=f"late value={value}",
                headers=headers,
                timeout=5,
            ).raise_for_status()
        assert server.stop(signal.SIGTERM) == 0
        shutdown_output = "".join(server.output)
        for value in range(20, 30):
            assert f"saw late value={value}" in shutdown_output

    with Webhook() as webhook, ServeProcess(data_dir, plugin_dir) as server:
        url = server.url
        late = query(url, "mydb", "SELECT value FROM late ORDER BY value", token)
        assert [row["value"] for row in late] == [float(v) for v in range(20, 30)]
        logged = log_texts(url, "mydb", token)
        assert all(any(f"saw late value={v}" in t for t in logged) for v in range(20, 30))
        listed = query(
            url, "mydb", "SELECT trigger_name FROM system.processing_engine_triggers", token
        )
        assert sorted(row["trigger_name"] for row in listed) == ["recorder", "relay"]
        echo = requests.post(
            f"{url}/api/v3/engine/alert?echo=1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert echo.json()["args"] == {"webhook": echo.json()["args"]["webhook"]}
        deleted = run_cli(
            "delete", "trigger", "--host", url, "--token", token, "-d", "mydb", "relay"
        )
        assert deleted.returncode == 0, deleted.stderr
        assert (
            requests.get(
                f"{url}/api/v3/engine/alert?echo=1",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            ).status_code
            == 404
        )
        assert server.stop() == 0


def test_without_auth_write_apis_formats_and_limits(tmp_path: Path, plugin_dir: Path) -> None:
    with ServeProcess(
        tmp_path / "data", plugin_dir, "--without-auth", "--max-http-request-size", "2000"
    ) as server:
        url = server.url
        assert requests.get(f"{url}/health", timeout=5).text == "OK"
        assert "version" in requests.get(f"{url}/ping", timeout=5).json()

        # v1 and v2 writes are all-or-nothing
        v1 = requests.post(f"{url}/write?db=db1&precision=s", data="m,t=x f=1 10\nm f=", timeout=5)
        assert v1.status_code == 400
        assert query(url, "db1", "SHOW TABLES") == [] or all(
            r["table_name"] != "m" for r in query(url, "db1", "SHOW TABLES")
        )
        v2 = requests.post(
            f"{url}/api/v2/write?bucket=db1&precision=s",
            data="m,t=x f=1 10\nm,t=y f=2 11",
            timeout=5,
        )
        assert v2.status_code == 204
        rows = query(url, "db1", "SELECT t, f, time FROM m ORDER BY t")
        assert [(r["t"], r["f"]) for r in rows] == [("x", 1.0), ("y", 2)]

        zipped = requests.post(
            f"{url}/api/v3/write_lp?db=db1",
            data=gzip.compress(b"g v=1"),
            headers={"Content-Encoding": "gzip"},
            timeout=5,
        )
        assert zipped.status_code == 204
        too_big = requests.post(f"{url}/api/v3/write_lp?db=db1", data="g v=1\n" * 1000, timeout=5)
        assert too_big.status_code == 413 and "limit" in too_big.json()["error"]

        sql = "SELECT t, f FROM m WHERE t = $tag"
        params = json.dumps({"tag": "y"})
        as_csv = requests.get(
            f"{url}/api/v3/query_sql",
            params={"db": "db1", "q": sql, "params": params, "format": "csv"},
            timeout=5,
        )
        assert as_csv.text.splitlines() == ["t,f", "y,2.0"]
        as_jsonl = requests.get(
            f"{url}/api/v3/query_sql",
            params={"db": "db1", "q": sql, "params": params, "format": "jsonl"},
            timeout=5,
        )
        assert [json.loads(line) for line in as_jsonl.text.splitlines()] == [{"t": "y", "f": 2}]
        posted = requests.post(
            f"{url}/api/v3/query_sql",
            json={"db": "db1", "q": sql, "params": {"tag": "x"}, "format": "jsonl"},
            timeout=5,
        )
        assert [json.loads(line) for line in posted.text.splitlines()] == [{"t": "x", "f": 1}]
        pretty = run_cli("query", "--host", url, "-d", "db1", sql.replace("$tag", "'x'"))
        assert pretty.returncode == 0
        assert pretty.stdout.splitlines()[1].split("|")[1:3] == [" t ", " f   "]
        bad = requests.get(
            f"{url}/api/v3/query_sql", params={"db": "db1", "q": "SELECT nope FROM m"}, timeout=5
        )
        assert bad.status_code == 400 and bad.json()["error"]

        bad_trigger = run_cli(
            "create",
            "trigger",
            "--host",
            url,
            "-d",
            "db1",
            "--plugin-filename",
            "missing.py",
            "--trigger-spec",
            "all_tables",
            "t1",
        )
        assert bad_trigger.returncode == 1 and "not found" in bad_trigger.stderr
        scheduled = run_cli(
            "create",
            "trigger",
            "--host",
            url,
            "-d",
            "db1",
            "--plugin-filename",
            "recorder.py",
            "--trigger-spec",
            "every:1 fortnight",
            "t2",
        )
        assert scheduled.returncode == 1 and "couldn't parse to duration" in scheduled.stderr
        assert server.stop() == 0
