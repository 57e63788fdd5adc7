"""What happens to alerts between the detector and the outbox: the noise-control stages.

Like Alertmanager's notify pipeline, each stage is a small plain object fed the alerts of one
call in data-time order, knowing nothing of InfluxDB or HTTP: ``inhibit`` (one incident per
series and field at its highest level), ``silences`` and ``maintenance`` (silences from a table,
recurring windows from the config), then, for what is sent, ``grouping`` (one notification per
group of series) and ``cap`` (a storm cap with one summary a minute); ``pipeline`` chains the
first ones. The plugin glue (``madcheck.plugin.writes``) chains them and records every
alert's fate in the alerts table. ``command.py`` is the ``madcheck silence`` command line, which
writes and reads silence rows through the ordinary engine client.
"""
