"""Delivery of alerts: the client of the notifier endpoint and the channel senders behind it."""
