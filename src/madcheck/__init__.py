"""madcheck: streaming MAD anomaly detection and alerting for InfluxDB 3.

The package is laid out the way data flows through it:

* ``madcheck.config``  trigger arguments, TOML and environment -> one validated config
* ``madcheck.detect``  rolling median/MAD windows and the count, duration and flip rules
* ``madcheck.notify``  delivery of alerts to the notifier endpoint and the channel senders
* ``madcheck.plugin``  the thin adapters the Processing Engine calls
* ``madcheck.engine``  a local stand-in for the parts of InfluxDB 3 the plugins use
"""

__version__ = "0.1.0"
