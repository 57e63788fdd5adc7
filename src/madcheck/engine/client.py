"""The HTTP client behind `madcheck create|delete|enable|disable trigger`, `query` and `write`.

Its job beyond sending requests is turning failures into sentences a person can act on; it never
repeats the token, and never prints a ``requests`` exception (those can carry URLs).
"""

from __future__ import annotations

import json
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
