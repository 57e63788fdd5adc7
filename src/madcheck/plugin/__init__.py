"""Adapters the Processing Engine calls: thin glue between ``influxdb3_local`` and the package."""
