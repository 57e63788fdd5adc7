"""The reliability arguments: defaults, spellings and clear errors."""

import pytest

from madcheck.config.settings import RETIRED_DELIVERY_BUDGET, ConfigError, load_config

BASE = {
    "measurement": "cpu",
    "mad_thresholds": "temp:2.5:20:5",
    "senders": "http",
    "http_webhook_url": "https://hooks.test/reliability",
}


def test_defaults():
    config = load_config(BASE, environ={}).config
    delivery = config.delivery
    assert (delivery.timeout_s, delivery.outbox_size) == (10.0, 10_000)
    assert (delivery.outbox_backoff_s, delivery.outbox_backoff_max_s) == (1.0, 30.0)
    warm = config.warm_start
    assert (warm.enabled, warm.lookback_ns, warm.max_rows) == (True, 3600 * 10**9, 50_000)


def test_every_argument_and_its_spellings():
    config = load_config(
        {
            **BASE,
            "outbox_size": "20",
            "outbox_backoff": "0",
            "outbox_backoff_max": "2m",
            "warm_start": "off",
            "warm_start_lookback": "90",
            "warm_start_max_rows": "1000",
        },
        environ={},
    ).config
    assert config.delivery.outbox_size == 20
    assert (config.delivery.outbox_backoff_s, config.delivery.outbox_backoff_max_s) == (0, 120)
    assert config.warm_start.enabled is False
    assert config.warm_start.lookback_ns == 90 * 10**9 and config.warm_start.max_rows == 1000


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"notification_timeout": "0"}, "notification_timeout must be greater than zero"),
        ({"outbox_size": "0"}, "outbox_size must be between 1 and 1000000"),
        ({"outbox_backoff": "1m", "outbox_backoff_max": "30s"}, "outbox_backoff must not be"),
        ({"warm_start": "maybe"}, "warm_start must be true or false"),
        ({"warm_start_lookback": "400d"}, "warm_start_lookback must be at most 366d"),
        ({"warm_start_max_rows": "-1"}, "warm_start_max_rows must be between"),
    ],
)
def test_bad_values_are_one_clear_error(arguments, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**BASE, **arguments}, environ={})


@pytest.mark.parametrize("value", ["2s", "soon", "0"])
def test_the_retired_delivery_budget_is_a_warning_whatever_its_value(value):
    """Calls no longer post alerts, so there is no budget to spend; old trigger definitions
    that still set it keep working and are told why it does nothing."""
    loaded = load_config({**BASE, "delivery_budget": value}, environ={})
    assert RETIRED_DELIVERY_BUDGET in loaded.warnings
    assert not [w for w in loaded.warnings if "unknown argument" in w]
