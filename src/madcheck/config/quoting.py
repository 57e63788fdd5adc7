"""Quotes around argument values.

A trigger argument may reach the plugin still wrapped in the quotes a user typed for the shell
(``--trigger-arguments 'measurement="cpu"'``), depending on how it was quoted. Exactly one
matching outer pair is removed: a template such as ``'$field' is high: '$value'`` keeps its own.
"""

from __future__ import annotations

_QUOTES = "\"'"


def unquote(text: str) -> str:
    """``text`` without surrounding white space and one matching pair of outer quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        return text[1:-1].strip()
    return text
