"""A local, single-node stand-in for the parts of InfluxDB 3 the plugins use."""
