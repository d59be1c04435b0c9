from pathlib import Path

import pytest

from hakon.config import Settings, SettingsError, markdown_table, parse_duration


def test_defaults() -> None:
    s = Settings.load({}, {})
    assert (s.host, s.port, s.data_dir, s.log_level) == (
        "127.0.0.1",
        9420,
        Path("hakon-data"),
        "info",
    )
    assert s.no_auth is False


def test_flag_beats_environment_beats_default() -> None:
    env = {"HAKON_PORT": "9500", "HAKON_LOG_LEVEL": "debug"}
    s = Settings.load({"port": "9600"}, env)
    assert s.port == 9600  # flag over environment
    assert s.log_level == "debug"  # environment over default
    assert Settings.load({"port": None}, env).port == 9500  # unset flag falls through


@pytest.mark.parametrize(
    ("flags", "env", "fragment"),
    [
        ({"port": "abc"}, {}, "invalid value 'abc' for port (--port): expected an integer"),
        ({}, {"HAKON_PORT": "70000"}, "for port (HAKON_PORT)"),
        ({}, {"HAKON_LOG_LEVEL": "loud"}, "expected one of debug, info, warning, error"),
        ({}, {"HAKON_NO_AUTH": "maybe"}, "for no_auth (HAKON_NO_AUTH): expected true or false"),
        ({}, {"HAKON_TOKEN_MAX_TTL": "forever"}, "expected a duration"),
        ({}, {"HAKON_RATE_LIMIT_RPS": "-1"}, "expected a non-negative number"),
        ({"no_auth": "true", "host": "0.0.0.0"}, {}, "no_auth is refused with host '0.0.0.0'"),
        ({}, {"HAKON_TOKEN_DEFAULT_TTL": "2y", "HAKON_TOKEN_MAX_TTL": "1y"}, "must not exceed"),
    ],
)
def test_bad_settings_name_the_setting_and_source(flags: dict, env: dict, fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load(flags, env)
    assert fragment in str(info.value)


def test_secret_value_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load({}, {"HAKON_AUTH_SECRET": "short-secret"})
    assert "short-secret" not in str(info.value)
    assert "auth_secret" in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_no_auth_allowed_on_loopback(host: str) -> None:
    assert Settings.load({"no_auth": "true", "host": host}, {}).no_auth is True


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("24h", 86400), ("15d", 1296000)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_readme_and_configuration_doc_carry_the_current_settings_table() -> None:
    root = Path(__file__).parent.parent
    table = markdown_table()
    assert table in (root / "README.md").read_text()
    assert table in (root / "docs" / "configuration.md").read_text()
