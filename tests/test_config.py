import pytest

from madcheck.config.settings import DEFAULT_COUNT_TEXT, ConfigError, load_config

BASE = {
    "measurement": "cpu",
    "mad_thresholds": "temp:2.5:20:5",
    "senders": "slack",
    "slack_webhook_url": "https://hooks.slack.test/services/T/B/X",
}


def test_seed_arguments_with_defaults():
    loaded = load_config(BASE, environ={})
    config = loaded.config
    assert config.measurement == "cpu"
    assert config.senders_config == {"slack": {"slack_webhook_url": BASE["slack_webhook_url"]}}
    assert config.state_change_count == 0
    assert config.count_text == DEFAULT_COUNT_TEXT
    assert config.delivery.url == "http://localhost:8181/api/v3/engine/notify"
    assert config.delivery.token is None
    assert any("without a token" in w for w in loaded.warnings)


def test_every_optional_argument():
    config = load_config(
        {
            **BASE,
            "senders": "slack.discord.http.sms.whatsapp",
            "slack_headers": "e30=",
            "discord_webhook_url": "https://discord.test/api/webhooks/1/a",
            "http_webhook_url": "https://example.test/hook",
            "http_headers": "eyJYIjoiMSJ9",
            "twilio_sid": "ACabc",
            "twilio_token": "tok",
            "twilio_from_number": "+1234567890",
            "twilio_to_number": "+0987654321",
            "influxdb3_auth_token": "apiv3_secret",
            "state_change_count": "3",
            "notification_count_text": "count $field",
            "notification_time_text": "time $field",
            "notification_path": "/some/path/",
            "port_override": "8182",
            "notification_attempts": "2",
            "retry_backoff": "0..50ms",
            "notification_timeout": "2s",
        },
        environ={},
    ).config
    assert config.sender_names == ["slack", "discord", "http", "sms", "whatsapp"]
    assert config.senders_config["slack"]["slack_headers"] == "e30="
    assert config.senders_config["sms"] == config.senders_config["whatsapp"]
    assert config.delivery.url == "http://localhost:8182/api/v3/engine/some/path"
    assert config.delivery.token == "apiv3_secret"
    assert config.delivery.attempts == 2
    assert config.delivery.backoff_s == (0.0, 0.05)
    assert config.delivery.timeout_s == 2.0
    assert (config.count_text, config.time_text) == ("count $field", "time $field")
    assert config.state_change_count == 3


def test_secrets_from_the_environment():
    config = load_config(
        {
            **BASE,
            "senders": "sms",
            "twilio_from_number": "+1",
            "twilio_to_number": "+2",
        },
        environ={"TWILIO_SID": "ACenv", "TWILIO_TOKEN": "envtok", "INFLUXDB3_AUTH_TOKEN": "t"},
    ).config
    assert config.senders_config["sms"]["twilio_sid"] == "ACenv"
    assert config.senders_config["sms"]["twilio_token"] == "envtok"
    assert config.delivery.token == "t"


def test_sender_missing_an_argument_is_dropped_with_a_warning():
    loaded = load_config({**BASE, "senders": "slack.discord.pager"}, environ={})
    assert loaded.config.sender_names == ["slack"]
    assert any("'discord' dropped: missing discord_webhook_url" in w for w in loaded.warnings)
    assert any("'pager' dropped: unknown sender" in w for w in loaded.warnings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"measurement": ""}, "measurement is required"),
        ({"mad_thresholds": ""}, "mad_thresholds is required"),
        ({"mad_thresholds": "x:y"}, "no usable condition"),
        ({"senders": ""}, "senders is required"),
        ({"senders": "discord"}, "no usable sender"),
        ({"port_override": "http"}, "port_override must be a whole number"),
        ({"port_override": "70000"}, "between 1 and 65535"),
        ({"state_change_count": "-1"}, "state_change_count must be >= 0"),
        ({"notification_timeout": "soon"}, "notification_timeout"),
        ({"retry_backoff": "5s..1s"}, "upper bound is below"),
        ({"config_file_path": "x.toml"}, "PLUGIN_DIR"),
    ],
)
def test_fatal_problems_name_the_argument(change, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**BASE, **change}, environ={})


def test_args_none_is_a_clear_error():
    with pytest.raises(ConfigError, match="measurement is required"):
        load_config(None, environ={})


def test_state_change_count_one_is_treated_as_zero():
    loaded = load_config({**BASE, "state_change_count": "1"}, environ={})
    assert loaded.config.state_change_count == 0
    assert any("treated as 0" in w for w in loaded.warnings)


def test_toml_overrides_arguments_key_by_key(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mad.toml").write_text(
        'mad_thresholds = [["temp", 2.5, 20, 5], ["load", 3.0, 10, "2m"]]\n'
        'senders = ["slack", "http"]\n'
        'http_webhook_url = "https://example.test/hook"\n'
        "state_change_count = 4\n"
        "port_override = 9000\n"
    )
    config = load_config(
        {**BASE, "config_file_path": "'conf/mad.toml'", "state_change_count": "2"},
        environ={"PLUGIN_DIR": str(tmp_path)},
    ).config
    assert [t.describe() for t in config.thresholds] == ["temp:2.5:20:5", "load:3:10:2m"]
    assert config.sender_names == ["slack", "http"]
    assert config.state_change_count == 4
    assert config.delivery.port == 9000
    assert config.measurement == "cpu"  # not in the file: the argument stands


@pytest.mark.parametrize(
    ("content", "path", "message"),
    [
        (None, "missing.toml", "not found in the plugin directory"),
        ("mad_thresholds = [", "bad.toml", "not valid TOML"),
        ("", "/etc/passwd", "relative to the plugin directory"),
    ],
)
def test_toml_problems(tmp_path, content, path, message):
    if content is not None and not path.startswith("/"):
        (tmp_path / path).write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config({**BASE, "config_file_path": path}, environ={"PLUGIN_DIR": str(tmp_path)})


def test_unknown_arguments_are_named_in_a_warning():
    loaded = load_config({**BASE, "retry_backoff_min": "1s", "notification_atempts": "2"}, {})
    assert "ignoring unknown argument(s), a typo? notification_atempts, retry_backoff_min" in (
        loaded.warnings
    )
    assert not any("unknown" in w for w in load_config(BASE, environ={}).warnings)


@pytest.mark.parametrize("value", ["1.797693134862316e+299", "999999999999d"])
def test_durations_beyond_a_century_are_a_clear_error(value):
    with pytest.raises(ConfigError, match=r"repeat_interval: .*longer than 100 years"):
        load_config({**BASE, "repeat_interval": value}, environ={})
