"""Trigger arguments, TOML overrides and environment, turned into one validated config."""
