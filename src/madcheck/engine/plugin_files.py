"""Files sent to the server's plugin dir (``create trigger --upload``), checked like InfluxDB 3.

``POST /api/v3/plugins/files`` carries ``{"plugin_name": RELATIVE_PATH, "content": TEXT}``; the
CLI sends a single file under its own name and a directory as one request per ``.py`` file, named
``<folder>/<path inside it>``. The server creates missing folders and overwrites an existing file
(InfluxDB 3 does too). The name comes from whoever holds a token, so it is held to the plugin
dir: no ``..``, no absolute path, no control character, no way out through a symbolic link.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath


class PluginPathError(ValueError):
    """A plugin file name that would land outside the plugin dir, or is no file name at all."""


def plugin_file_target(plugin_dir: Path, name: str) -> Path:
    """Where ``name`` lands in ``plugin_dir``; raises ``PluginPathError`` when it would escape."""
    refusal = PluginPathError(
        f"path traversal refused: plugin file name {name!r} must be a relative path inside "
        "the plugin dir"
    )
    if not name or "\\" in name or any(not char.isprintable() for char in name):
        raise refusal
    relative = PurePosixPath(name)
    if relative.is_absolute() or any(part in ("..", "") for part in relative.parts):
        raise refusal
    if not relative.parts:  # "." and the like
        raise refusal
    base = plugin_dir.resolve()
    target = base.joinpath(*relative.parts)
    if not target.resolve().is_relative_to(base):  # a symbolic link pointing out of the dir
        raise refusal
    if target.is_dir():
        raise PluginPathError(f"plugin file name {name!r} names a directory")
    return target


def save_plugin_file(plugin_dir: Path, name: str, content: str) -> Path:
    """Write ``content`` to ``name`` in ``plugin_dir``, replacing an existing file at once.

    The text goes to a temporary file beside the target first and is renamed over it, so a
    trigger loading the plugin meanwhile reads the old file or the new one, never half of one.
    """
    target = plugin_file_target(plugin_dir, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the folders just created may not be links, but check again: the tree can change meanwhile
    target = plugin_file_target(plugin_dir, name)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
