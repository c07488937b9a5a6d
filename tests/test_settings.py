"""Tests for scripts/settings.py: loading, errors, secrets and sources directly, then the CLI.

Each test starts from an environment with no APP_* variable and an empty working directory (no
stray ./.env), and sets what it needs through monkeypatch, which puts everything back. Two runs
are real processes: the default sample with --json, and a broken environment end to end. The run
is instantaneous (it reads a few variables and files), so there is no Ctrl-C test.
"""

import json
import logging
import os
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError, sources

import settings as lesson
from conftest import Invocation, ScriptRunner

GOOD_KEY = "good-key-" + "x" * 31  # 40 characters: valid
BAD_KEY = "hunter2-too-short"  # fails the length validator, and must still never print
PG_URL = "postgresql+asyncpg://app:TopSecretPw@db/app"  # its password must never print
VALID = {"APP_ENVIRONMENT": "dev", "APP_API_KEY": GOOD_KEY, "APP_DB__URL": "sqlite+aiosqlite://"}
# Five bad variables, and APP_DB__URL missing: six problems, every one reported in one go.
BROKEN = {
    "APP_ENVIRONMENT": "moon",
    "APP_PORT": "0",
    "APP_API_KEY": BAD_KEY,
    "APP_DB__POOL_SIZE": "x",
    "APP_DB__POOLSIZE": "3",  # a typo in a nested name is an error, not ignored
}
Invoke = Callable[..., Invocation]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    for key in list(os.environ):
        if key.upper().startswith("APP_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # rich's table on one line per row
    lesson.get_settings.cache_clear()
    yield monkeypatch
    lesson.get_settings.cache_clear()


def set_env(patch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for key, value in values.items():
        patch.setenv(key, value)


def problems(run: Invocation) -> dict[str, str]:
    """The error report: variable -> message, after checking its shape (exit 2, a line each)."""
    assert run.code == 2, run
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    header, *lines = run.stderr.strip().splitlines()
    count = len(lines)
    noun = "problem" if count == 1 else "problems"
    assert header == f"error: invalid configuration, {count} {noun}:"
    found = dict(line.split(": ", 1) for line in lines)
    assert len(found) == count, "one line per variable"
    return found


# --- errors: every one at once, named by its variable, never quoting a secret -------------------


def test_every_bad_variable_is_reported_at_once(clean_env: pytest.MonkeyPatch, invoke: Invoke):
    set_env(clean_env, BROKEN)
    run = invoke(lesson.run, "--from-environment")
    found = problems(run)
    assert set(found) == {*BROKEN, "APP_DB__URL"}
    assert found["APP_DB__POOL_SIZE"].startswith("Input should be a valid integer")
    assert found["APP_DB__URL"] == "Field required"
    assert found["APP_API_KEY"] == "Value error, must be at least 32 characters"
    assert BAD_KEY not in run.stderr


def test_a_rule_between_fields_is_checked_once_the_fields_are_valid(
    clean_env: pytest.MonkeyPatch, invoke: Invoke
) -> None:
    set_env(clean_env, VALID | {"APP_ENVIRONMENT": "prod", "APP_DEBUG": "true"})
    assert problems(invoke(lesson.run, "--from-environment")) == {
        "settings": "Value error, APP_DEBUG must be false in prod"
    }


def test_a_nested_block_that_is_not_json_is_one_line(
    clean_env: pytest.MonkeyPatch, invoke: Invoke
) -> None:
    """pydantic-settings stops at it, before validating the rest: it is reported alone."""
    set_env(clean_env, VALID | {"APP_DB": '{"url": "' + BAD_KEY + '"'})
    run = invoke(lesson.run, "--from-environment")
    message = "not valid JSON (Expecting ',' delimiter: line 1 column 28 (char 27))"
    assert problems(run) == {"APP_DB": message}
    assert BAD_KEY not in run.stderr


def test_a_secrets_dir_that_is_a_file_is_one_line(clean_env: pytest.MonkeyPatch, tmp_path: Path):
    set_env(clean_env, VALID)
    (tmp_path / "secrets").write_text("")
    with pytest.raises(SettingsError) as caught:
        lesson.load_settings(None, tmp_path / "secrets")
    assert lesson.describe_source_error(caught.value) == (
        "settings: secrets_dir must reference a directory, not a file"
    )


def test_a_wrong_database_url_names_the_drivers(clean_env: pytest.MonkeyPatch) -> None:
    set_env(clean_env, VALID | {"APP_DB__URL": "mysql://db/app"})
    with pytest.raises(ValidationError) as caught:
        lesson.load_settings(None, None)
    assert lesson.describe_errors(caught.value) == [
        "APP_DB__URL: Value error, must start with one of sqlite+aiosqlite://, postgresql+asyncpg://"
    ]


# --- secrets -------------------------------------------------------------------------------------


def test_a_secret_never_prints(clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    set_env(clean_env, VALID)
    with caplog.at_level(logging.INFO, logger="settings"):
        loaded = lesson.load_settings(None, None)
    assert "settings loaded" in caplog.text
    assert loaded.api_key.get_secret_value() == GOOD_KEY  # the service can still use it
    for shown in (repr(loaded), str(loaded), str(loaded.model_dump()), loaded.model_dump_json()):
        assert GOOD_KEY not in shown
        assert "**********" in shown
    assert GOOD_KEY not in caplog.text


def test_a_database_password_never_prints(
    clean_env: pytest.MonkeyPatch, invoke: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    set_env(clean_env, VALID | {"APP_DB__URL": PG_URL})
    with caplog.at_level(logging.INFO, logger="settings"):
        runs = [invoke(lesson.run, "--from-environment", *args) for args in ([], ["--json"])]
        loaded = lesson.load_settings(None, None)
    assert [run.code for run in runs] == [0, 0]
    assert json.loads(runs[1].stdout)["settings"]["db.url"] == "**********"
    assert loaded.db.url.get_secret_value() == PG_URL  # the service can still connect
    outputs = [run.stdout + run.stderr for run in runs]
    dumps = [repr(loaded), str(loaded), str(loaded.model_dump()), loaded.model_dump_json()]
    for shown in [*outputs, caplog.text, *dumps]:
        assert "TopSecretPw" not in shown


@pytest.mark.parametrize("where", ["env", "secrets dir"])
def test_a_bad_secret_never_prints(clean_env: pytest.MonkeyPatch, tmp_path: Path, where: str):
    set_env(clean_env, {key: value for key, value in VALID.items() if key != "APP_API_KEY"})
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    if where == "env":
        clean_env.setenv("APP_API_KEY", BAD_KEY)
    else:
        (secrets_dir / "app_api_key").write_text(BAD_KEY)
    with pytest.raises(ValidationError) as caught:
        lesson.load_settings(None, secrets_dir)
    error = caught.value
    assert error.errors()[0]["input"] == BAD_KEY  # why describe_errors leaves `input` out
    assert BAD_KEY not in str(error)  # hide_input_in_errors
    assert BAD_KEY not in repr(error)
    assert lesson.describe_errors(error) == [
        "APP_API_KEY: Value error, must be at least 32 characters"
    ]


# --- where each value comes from -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "port", "source"),
    [
        ({"env", ".env", "secrets dir"}, 1001, "env"),
        ({".env", "secrets dir"}, 1002, ".env"),
        ({"secrets dir"}, 1003, "secrets dir"),
        (set(), 8000, "default"),
    ],
)
def test_env_beats_dotenv_beats_secrets_beats_default(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, layers: set[str], port: int, source: str
) -> None:
    set_env(clean_env, VALID)
    env_file = tmp_path / "service.env"
    env_file.write_text("APP_PORT=1002\n" if ".env" in layers else "")
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    if "secrets dir" in layers:
        (secrets_dir / "app_port").write_text("1003")
    if "env" in layers:
        clean_env.setenv("APP_PORT", "1001")
    loaded = lesson.load_settings(env_file, secrets_dir)
    assert loaded.port == port
    origins = lesson.value_sources(loaded, env_file, secrets_dir)
    assert origins.get("port", "default") == source
    assert origins["api_key"] == "env"


def test_nested_values_are_attributed_one_by_one(clean_env: pytest.MonkeyPatch, tmp_path: Path):
    set_env(clean_env, VALID)
    env_file = tmp_path / "service.env"
    env_file.write_text("APP_DB__POOL_SIZE=7\n")
    loaded = lesson.load_settings(env_file, None)
    assert (loaded.db.url.get_secret_value(), loaded.db.pool_size) == ("sqlite+aiosqlite://", 7)
    origins = lesson.value_sources(loaded, env_file, None)
    assert (origins["db.url"], origins["db.pool_size"]) == ("env", ".env")
    assert "db.timeout_s" not in origins  # a default


class FromVault(sources.InitSettingsSource):
    """A source of the service's own, as one reading a vault would be: here, a fixed port."""


class VaultSettings(lesson.Settings):
    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        vault = FromVault(settings_cls, init_kwargs={"port": 1234})
        return (init_settings, env_settings, vault, dotenv_settings, file_secret_settings)


def test_only_settings_are_attributed_and_any_source_is_named(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_env(clean_env, VALID)
    env_file = tmp_path / "shared.env"
    env_file.write_text("APP_OTHER_TOOL=1\nAPP_DEBUG=true\n")  # a .env shared with other tools
    loaded = VaultSettings(_env_file=env_file, _secrets_dir=None)
    origins = lesson.value_sources(loaded, env_file, None)
    assert origins == {
        "environment": "env",
        "api_key": "env",
        "db.url": "env",
        "port": "FromVault",
        "debug": ".env",
    }


# --- the cached dependency -----------------------------------------------------------------------


def test_get_settings_reads_once_until_the_cache_is_cleared(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_env(clean_env, VALID)
    (tmp_path / ".env").write_text("APP_PORT=1234\n")  # ./.env, as a service reads it
    secrets_dir = tmp_path / "mounted"
    secrets_dir.mkdir()
    (secrets_dir / "app_debug").write_text("true")
    clean_env.setattr(lesson, "SECRETS_DIR", secrets_dir)
    first = lesson.get_settings()
    assert (first.port, first.debug) == (1234, True)
    clean_env.setenv("APP_PORT", "4321")
    assert lesson.get_settings() is first  # read once: a change needs a restart
    lesson.get_settings.cache_clear()
    assert lesson.get_settings().port == 4321


# --- the command line ----------------------------------------------------------------------------


def test_the_sample_run_shows_every_source(clean_env: pytest.MonkeyPatch, invoke: Invoke) -> None:
    clean_env.setenv("APP_PORT", "9")  # the caller's own variable: the sample ignores it
    run = invoke(lesson.run)
    assert run.code == 0, run.stderr
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in run.stdout.splitlines()]
    rows = {row[0]: row[1:] for row in cells if row}
    assert rows["port"] == ["APP_PORT", "8000", "default"]
    assert rows["db.pool_size"] == ["APP_DB__POOL_SIZE", "20", "env"]
    assert rows["debug"] == ["APP_DEBUG", "true", ".env"]  # the secrets dir says false
    assert rows["api_key"] == ["APP_API_KEY", "**********", "secrets dir"]
    assert rows["db.url"] == ["APP_DB__URL", "**********", ".env"]
    assert lesson.SAMPLE_API_KEY not in run.stdout
    assert os.environ["APP_PORT"] == "9"  # the caller's environment is back as it was
    assert "APP_ENVIRONMENT" not in os.environ


def test_the_environment_with_an_env_file_and_secrets_dir(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, invoke: Invoke
) -> None:
    clean_env.setenv("APP_ENVIRONMENT", "staging")
    env_file = tmp_path / "service.env"
    env_file.write_text("APP_DB__URL=postgresql+asyncpg://db/app\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "APP_API_KEY").write_text(GOOD_KEY)  # names match in any case
    args = ["--from-environment", "--env-file", str(env_file), "--secrets-dir", "secrets"]
    run = invoke(lesson.run, *args, "--json")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["settings"]["api_key"] == "**********"
    assert result["sources"]["db.url"] == ".env"
    assert result["sources"]["api_key"] == "secrets dir"
    assert GOOD_KEY not in run.stdout


def test_the_run_lines_work_as_written(clean_env: pytest.MonkeyPatch, invoke: Invoke) -> None:
    """Each Run line of the docstring, in an empty directory with no APP_* variable set."""
    assert lesson.__doc__ is not None
    section = lesson.__doc__.split("Run:")[1].split("Try it:")[0]
    section = section.replace("\\\n", " ").replace("$(openssl rand -hex 16)", "0" * 32)
    commands = [line for line in section.splitlines() if line.strip()]
    assert len(commands) == 3
    for command in commands:
        words = shlex.split(command)
        start = words.index("uv")
        assert words[start : start + 3] == ["uv", "run", "scripts/settings.py"]
        with pytest.MonkeyPatch.context() as patch:
            set_env(patch, dict(word.split("=", 1) for word in words[:start]))
            run = invoke(lesson.run, *words[start + 3 :])
        assert run.code == 0, (command, run.stderr)


def test_bad_arguments(clean_env: pytest.MonkeyPatch, tmp_path: Path, invoke: Invoke) -> None:
    (tmp_path / "a.env").write_text("")
    invoke(lesson.run, "--env-file", "a.env").assert_usage_error("--env-file")
    invoke(lesson.run, "--secrets-dir", ".").assert_usage_error("--secrets-dir")
    reading = ("--from-environment",)
    invoke(lesson.run, *reading, "--env-file", "missing").assert_usage_error("--env-file")
    invoke(lesson.run, *reading, "--secrets-dir", "a.env").assert_usage_error("--secrets-dir")
    invoke(lesson.run, "--bogus").assert_usage_error("--bogus")


# --- as a user runs it ---------------------------------------------------------------------------


def test_default_run_as_json(runner: ScriptRunner) -> None:
    proc = runner.run("settings", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["sources"] == {
        "environment": "env",
        "port": "default",
        "debug": ".env",
        "api_key": "secrets dir",
        "db.url": ".env",
        "db.pool_size": "env",
        "db.timeout_s": "default",
    }
    assert result["settings"]["api_key"] == "**********"
    assert lesson.SAMPLE_API_KEY not in proc.stdout + proc.stderr


def test_a_broken_environment_end_to_end() -> None:
    broken = ScriptRunner()
    broken.env = {key: value for key, value in broken.env.items() if not key.startswith("APP_")}
    broken.env |= BROKEN
    proc = broken.run("settings", "--from-environment")
    found = problems(Invocation(proc.returncode, proc.stdout, proc.stderr))
    assert set(found) == {*BROKEN, "APP_DB__URL"}
    assert BAD_KEY not in proc.stderr


def test_ctrl_c_exits_130(clean_env: pytest.MonkeyPatch, invoke: Invoke) -> None:
    """The run is instantaneous, so Ctrl-C is tested here: one arriving while it reads files."""

    def interrupted(directory: Path) -> tuple[Path, Path]:
        raise KeyboardInterrupt

    clean_env.setattr(lesson, "write_sample", interrupted)
    run = invoke(lesson.run)
    assert (run.code, run.stdout, run.stderr.strip()) == (130, "", "interrupted")
    assert "APP_ENVIRONMENT" not in os.environ  # the sample environment is undone on the way out
