"""The configuration file: the sample is the settings' own, and a bad file is named.

``config/authority.toml`` is written from ``Settings`` (authority/config_sample.py); a
file named by ``AUTHORITY_CONFIG_FILE`` must exist; a bad key is reported under the
file's name and the key, never with the value it holds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from authority.config_sample import EXAMPLES, SECRETS, render
from authority.settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "authority.toml"
SETTING_LINE = re.compile(r"^# (\w+) = (.+)$")
SECRET = "correct-horse-battery-staple-0123456789"


@pytest.fixture(autouse=True)
def _no_settings_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUTHORITY_"):
            monkeypatch.delenv(name)


def _uncommented(text: str) -> str:
    """The sample with every setting line made live, as an operator would edit it."""
    lines = []
    for line in text.splitlines():
        match = SETTING_LINE.match(line)
        if match and match.group(1) in Settings.model_fields:
            line = line.removeprefix("# ")
        lines.append(line)
    return "\n".join(lines) + "\n"


def _file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "authority.toml"
    path.write_text(text)
    monkeypatch.setenv("AUTHORITY_CONFIG_FILE", str(path))
    return path


def _refusal(**overrides: object) -> str:
    with pytest.raises(ConfigError) as refused:
        load_settings(**overrides)
    return str(refused.value)


# --- the sample -----------------------------------------------------------------------------
def test_the_sample_is_written_from_the_settings() -> None:
    assert SAMPLE.read_text() == render(), (
        "config/authority.toml is stale: python -m authority.config_sample > config/authority.toml"
    )


def test_every_setting_appears_in_the_sample_once() -> None:
    named = [m.group(1) for m in map(SETTING_LINE.match, SAMPLE.read_text().splitlines()) if m]
    assert sorted(named) == sorted(Settings.model_fields)


def test_the_sample_as_it_is_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHORITY_CONFIG_FILE", str(SAMPLE))
    assert load_settings() == Settings()


def test_the_sample_uncommented_loads_with_its_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _file(tmp_path, monkeypatch, _uncommented(SAMPLE.read_text()))
    for name in SECRETS:  # as its header advises: secrets from the environment
        monkeypatch.setenv(f"AUTHORITY_{name.upper()}", SECRET)
    settings = load_settings()
    for name, field in Settings.model_fields.items():
        if name not in EXAMPLES:
            assert getattr(settings, name) == field.default, name
    assert settings.issuer == EXAMPLES["issuer"]
    assert settings.auto_migrate is False


def test_the_samples_secret_placeholders_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, monkeypatch, _uncommented(SAMPLE.read_text()))
    message = _refusal()
    for name in SECRETS:
        assert f"{path}: {name}: String should have at least 32 characters" in message
    assert "REPLACE" not in message


# --- a file named that is not there, or not TOML ---------------------------------------------
def test_a_named_file_that_does_not_exist_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv("AUTHORITY_CONFIG_FILE", str(missing))
    assert _refusal() == f"{missing}: no such file (named by AUTHORITY_CONFIG_FILE)"


def test_the_command_says_so_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHORITY_")}
    env["AUTHORITY_CONFIG_FILE"] = str(missing)
    env["PYTHONPATH"] = str(ROOT)  # this checkout's package, from another directory
    done = subprocess.run(
        [sys.executable, "-m", "authority.cli", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: {missing}: no such file (named by AUTHORITY_CONFIG_FILE)\n"
    assert not (tmp_path / "var").exists()


def test_a_file_that_is_not_toml_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, monkeypatch, f'secret_key = "{SECRET}\n')
    message = _refusal()
    assert message.startswith(f"{path}: not valid TOML: ")
    assert SECRET not in message


def test_dev_null_names_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHORITY_CONFIG_FILE", os.devnull)
    assert load_settings() == Settings()


def test_a_directory_is_not_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHORITY_CONFIG_FILE", str(tmp_path))
    assert _refusal() == f"{tmp_path}: cannot be read (Is a directory)"


def test_without_a_file_the_defaults_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config/authority.toml here, and none named
    assert load_settings() == Settings()


# --- a bad key, under the file's name ------------------------------------------------------
def test_an_unknown_key_is_named_under_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, monkeypatch, "acess_token_lifetime = 5\n")
    assert _refusal() == f"invalid configuration: {path}: acess_token_lifetime: unknown setting"


def test_a_table_is_named_as_not_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, monkeypatch, "[tokens]\nlifetime = 5\n")
    assert _refusal() == (
        f"invalid configuration: {path}: tokens: unknown setting "
        "(settings are top-level keys, without [tables])"
    )


def test_an_invalid_value_is_named_under_the_file_with_the_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, monkeypatch, 'access_token_lifetime = 7200\nlog_level = "loud"\n')
    message = _refusal()
    assert f"{path}: access_token_lifetime: Input should be less than or equal to 3600" in message
    assert f"{path}: log_level: Input should be 'debug', 'info', 'warning' or 'error'" in message
    assert "7200" not in message and "loud" not in message


def test_secret_values_are_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _file(
        tmp_path,
        monkeypatch,
        'secret_key = "hunter2-too-short"\n'
        'metrics_token = "hunter3"\n'
        'database_url = "mysql://authority:hunter4@db/authority"\n'
        'redis_url = "memcached://:hunter5@cache"\n',
    )
    message = _refusal()
    for name in ("secret_key", "metrics_token", "database_url", "redis_url"):
        assert f": {name}: " in message
    assert "hunter" not in message


def test_a_variable_overrides_a_bad_value_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _file(tmp_path, monkeypatch, "access_token_lifetime = 7200\n")
    monkeypatch.setenv("AUTHORITY_ACCESS_TOKEN_LIFETIME", "10")
    assert load_settings().access_token_lifetime == 10


def test_a_bad_variable_is_named_as_the_variable_even_when_the_file_has_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _file(tmp_path, monkeypatch, "access_token_lifetime = 10\n")
    monkeypatch.setenv("AUTHORITY_ACCESS_TOKEN_LIFETIME", "7200")
    assert _refusal() == (
        "invalid configuration: AUTHORITY_ACCESS_TOKEN_LIFETIME: "
        "Input should be less than or equal to 3600"
    )


def test_a_rule_across_settings_names_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _file(tmp_path, monkeypatch, "access_token_lifetime = 120\n")
    assert "access_token_lifetime must not exceed access_token_max_lifetime" in _refusal()
