"""``madcheck replay``: backtest a MAD configuration on recorded data.

Recorded line protocol or CSV goes through the same plugin file as in production, batch by batch
on the data's own clock, with notifications captured; what would have fired is shown as a
summary, written as an alert file, drawn as charts and gathered in an HTML report.
"""
