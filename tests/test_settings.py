"""Settings from the environment and TOML, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.settings import SettingsError, load_settings


def test_defaults_are_the_embedded_shape() -> None:
    """With nothing set: SQLite under var/, the in-process bus, 127.0.0.1:8000."""
    settings = load_settings(environ={})
    assert settings.database_url == "sqlite:///var/consentgate.db"
    assert settings.bus_url == "memory://"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_environment_overrides_toml(tmp_path: Path) -> None:
    """CONSENTGATE_* variables win over the TOML file, which wins over defaults."""
    config = tmp_path / "consentgate.toml"
    config.write_text('[consentgate]\nport = 9000\nhost = "0.0.0.0"\n')
    settings = load_settings(environ={"CONSENTGATE_PORT": "9100"}, config_file=config)
    assert (settings.host, settings.port) == ("0.0.0.0", 9100)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CONSENTGATE_PORT": "eighty"}, "CONSENTGATE_PORT"),
        ({"CONSENTGATE_PORT": "70000"}, "CONSENTGATE_PORT"),
        ({"CONSENTGATE_BUS_URL": "kafka://x"}, "CONSENTGATE_BUS_URL"),
        ({"CONSENTGATE_DATABASE_URL": "nonsense"}, "CONSENTGATE_DATABASE_URL"),
        ({"CONSENTGATE_DEFAULT_JURISDICTION": "mars"}, "CONSENTGATE_DEFAULT_JURISDICTION"),
        ({"CONSENTGATE_DEDUPE_RETENTION_HOURS": "1"}, "CONSENTGATE_DEDUPE_RETENTION_HOURS"),
    ],
)
def test_invalid_settings_name_the_setting(environ: dict[str, str], named: str) -> None:
    """An invalid value raises SettingsError whose message starts with the variable's name."""
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert str(caught.value).startswith(named)


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    """A misspelt key in the TOML file is refused by name."""
    config = tmp_path / "c.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="CONSENTGATE_PROT"):
        load_settings(environ={}, config_file=config)


def test_serve_refuses_to_start_on_invalid_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`consentgate serve` exits 2 with a message naming the bad setting."""
    monkeypatch.setenv("CONSENTGATE_PORT", "not-a-port")
    assert main(["serve"]) == 2
    assert "CONSENTGATE_PORT" in capsys.readouterr().err


def test_the_bus_is_the_embedded_outbox_or_nats() -> None:
    """memory:// and nats:// (NATS JetStream) exist; anything else is refused by name."""
    assert load_settings(environ={"CONSENTGATE_BUS_URL": "nats://127.0.0.1:4222"}).shared_bus
    assert not load_settings(environ={}).shared_bus
    with pytest.raises(SettingsError, match="CONSENTGATE_BUS_URL: expected memory://"):
        load_settings(environ={"CONSENTGATE_BUS_URL": "amqp://127.0.0.1"})


def test_workers_and_a_core_process_need_the_shared_bus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--workers", "2"]) == 2
    assert "need CONSENTGATE_BUS_URL=nats://" in capsys.readouterr().err
    assert main(["core"]) == 2
    assert "consentgate core needs CONSENTGATE_BUS_URL=nats://" in capsys.readouterr().err


def test_a_config_file_anchors_relative_paths_at_its_folder(tmp_path: Path) -> None:
    """Relative paths in a config file (and the defaults' var/ paths) are the file's folder's,
    so a command run from any folder finds the same data; variables stay the shell's."""
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "consentgate.toml"
    config.write_text('[consentgate]\nkey_file = "secrets/kek"\n')
    settings = load_settings(environ={}, config_file=config)
    folder = config.parent.resolve()
    assert settings.key_file == str(folder / "secrets" / "kek")
    assert settings.database_url == f"sqlite:///{folder}/var/consentgate.db"
    assert settings.receipt_key_file == str(folder / "var" / "keys" / "receipts.key")
    from_env = load_settings(
        environ={"CONSENTGATE_DATABASE_URL": "sqlite:///here.db"}, config_file=config
    )
    assert from_env.database_url == "sqlite:///here.db"


def test_enum_settings_list_the_allowed_values() -> None:
    with pytest.raises(SettingsError, match="expected one of gdpr, ccpa, none"):
        load_settings(environ={"CONSENTGATE_DEFAULT_JURISDICTION": "eu"})


def test_unknown_variables_are_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONSENTGATE_PROT", "8124")
    monkeypatch.chdir(tmp_path)
    main(["audit", "verify"])
    assert "CONSENTGATE_PROT is not a setting" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "verify"],
        ["tokens", "create", "--role", "admin"],
        ["tokens", "list"],
        ["sources", "list"],
        ["requests", "list"],
        ["keys", "rotate"],
    ],
)
def test_commands_never_create_a_database_they_should_find(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    """Run from the wrong folder, a command names the database it looked for and exits 2;
    it does not answer from (or mint into) a new empty one."""
    monkeypatch.chdir(tmp_path)
    for name in ("CONSENTGATE_DATABASE_URL", "CONSENTGATE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert main(argv) == 2
    assert f"no database at {tmp_path.resolve()}/var/consentgate.db" in capsys.readouterr().err
    assert not (tmp_path / "var" / "consentgate.db").exists()


def test_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["requests", "list", "--help"])
    assert "(default: 100)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("consentgate ")
