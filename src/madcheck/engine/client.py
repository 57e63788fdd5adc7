"""The HTTP client behind `madcheck create|delete|enable|disable trigger`, `query` and `write`.

It also uploads plugins (``create trigger --upload``) the way ``influxdb3`` does.

Its job beyond sending requests is turning failures into sentences a person can act on; it never
repeats the token, and never prints a ``requests`` exception (those can carry URLs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import requests

DEFAULT_HOST = "http://127.0.0.1:8181"
TOKEN_ENV = "INFLUXDB3_AUTH_TOKEN"


class ClientError(Exception):
    """A failed command, with a message meant for the person who ran it."""


class EngineClient:
    def __init__(self, host: str, token: str | None, timeout_s: float = 60.0) -> None:
        self.host = host.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            response = requests.request(
                method,
                self.host + path,
                params=params,
                json=json_body,
                data=data,
                headers=headers,
                timeout=self._timeout_s,
            )
        except requests.ConnectionError:
            raise ClientError(
                f"no server at {self.host}: start one with `madcheck serve` "
                "(or point --host at a running one)"
            ) from None
        except requests.Timeout:
            raise ClientError(f"the server at {self.host} did not answer in time") from None
        except requests.RequestException as exc:
            raise ClientError(
                f"request to {self.host} failed ({type(exc).__name__}); check --host"
            ) from None
        if response.status_code == 401:
            hint = "pass --token or set " + TOKEN_ENV
            if self._token:
                hint = "the token was refused; check --token / " + TOKEN_ENV
            raise ClientError(f"{self.host} requires a valid token: {hint}")
        if response.status_code >= 400:
            raise ClientError(describe_error(response))
        return response


def describe_error(response: requests.Response) -> str:
    """The server's error JSON as readable lines (partial writes list each rejected line)."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or "error" not in payload:
        text = response.text.strip() or response.reason
        return f"server answered HTTP {response.status_code}: {text}"
    lines = [f"server answered HTTP {response.status_code}: {payload['error']}"]
    data = payload.get("data")
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and "line_number" in item:
                lines.append(
                    f"  line {item['line_number']}: {item.get('error_message')}: "
                    f"{item.get('original_line')}"
                )
            else:
                lines.append(f"  {json.dumps(item)}")
    return "\n".join(lines)


PLUGIN_FILES_PATH = "/api/v3/plugins/files"


def upload_plugin(client: EngineClient, path: Path, database: str) -> str:
    """Send a plugin to the server's plugin dir as ``influxdb3 create trigger --upload`` does.

    A file is sent under its own name; a directory (which must hold ``__init__.py``) as one
    request per ``.py`` file below it, named ``<directory>/<path inside it>``, skipping
    ``__pycache__`` and not following links. Returns the name the trigger refers to.
    """
    if path.is_file():
        files = [(path.name, path)]
    elif path.is_dir():
        if not (path / "__init__.py").is_file():
            raise ClientError(f"multi-file plugin directory must contain __init__.py: {path}")
        files = [
            ("/".join((path.name, *source.relative_to(path).parts)), source)
            for source in _python_files(path)
        ]
    else:
        raise ClientError(f"file not found: {path}")
    for name, source in files:
        try:
            content = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ClientError(f"cannot read {source}: {exc}") from None
        client.request(
            "POST",
            PLUGIN_FILES_PATH,
            params={"db": database},
            json_body={"plugin_name": name, "content": content},
        )
    return path.name


def _python_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, directories, names in os.walk(folder, followlinks=False):
        directories[:] = sorted(d for d in directories if d != "__pycache__")
        found.extend(Path(root) / name for name in sorted(names) if name.endswith(".py"))
    return [file for file in found if file.is_file() and not file.is_symlink()]
