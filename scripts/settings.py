# /// script
# requires-python = ">=3.11"
# dependencies = ["click", "pydantic", "pydantic-settings", "rich"]
#
# [tool.uv]
# exclude-newer = "2026-11-20T00:00:00Z"
# ///
"""Read a service's configuration once, at start-up, and refuse to start on a bad one.

Pattern:       One pydantic-settings `Settings` class is the whole configuration: typed fields read
               from APP_* variables, a .env file and a secrets directory (env beats .env beats
               secrets beats defaults); nested models through APP_DB__URL; `SecretStr` for what
               must never print; validators for rules. A bad environment fails at start-up with
               every problem at once, one line per variable, never a secret. `get_settings()`
               caches the result, so a service reads it once and tests swap it.
When to use:   Any long-running service or job configured by its environment (12-factor, containers
               with secrets mounted as files, a .env file for local development).
When not to:   Settings that change while the process runs (feature flags: a flag service); deep
               hierarchical config files that people edit by hand (TOML/YAML with a schema).
Run:           uv run scripts/settings.py
               uv run scripts/settings.py --json
               APP_ENVIRONMENT=dev APP_API_KEY=$(openssl rand -hex 16) \
                 APP_DB__URL=sqlite+aiosqlite:// uv run scripts/settings.py --from-environment
Try it:        APP_DB__POOL_SIZE=x APP_API_KEY=hunter2 uv run scripts/settings.py --from-environment
               lists every bad or missing variable, a line each, and exits 2; "hunter2" never shows.
               Add APP_DB__POOLSIZE=3: a typo in a nested name is an error; top-level names are
               not checked (extra="ignore"), as a .env shared with other tools holds more.
               APP_PORT=9000 uv run scripts/settings.py: the sample ignores your APP_* variables.
"""

import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from unittest import mock

import click
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError, sources
from rich.console import Console
from rich.table import Table

# --- The pattern ---------------------------------------------------------------------------------
ENV_PREFIX = "APP_"
NESTED_DELIMITER = "__"  # APP_DB__POOL_SIZE sets db.pool_size
SECRETS_DIR = Path("/run/secrets")  # Docker and Kubernetes mount one file per secret here
MIN_API_KEY_LENGTH = 32  # a generated key; anything shorter was typed by a person
DB_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")  # the async drivers the service has

logger = logging.getLogger("settings")


class DatabaseSettings(BaseModel):
    """The database block: APP_DB__URL, APP_DB__POOL_SIZE, APP_DB__TIMEOUT_S."""

    # forbid: a typo such as APP_DB__POOLSIZE is an error, not a silently ignored variable.
    model_config = {"extra": "forbid", "hide_input_in_errors": True}

    url: SecretStr  # required: no default is a safe guess; secret: it may hold a password
    pool_size: int = Field(default=5, ge=1, le=100)
    timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)

    @field_validator("url")
    @classmethod
    def async_driver(cls, url: SecretStr) -> SecretStr:
        if not url.get_secret_value().startswith(DB_SCHEMES):
            raise ValueError(f"must start with one of {', '.join(DB_SCHEMES)}")
        return url


class Settings(BaseSettings):
    """Everything the service reads from its environment, validated before it starts."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        extra="ignore",  # a .env file is often shared with docker compose and other tools
        hide_input_in_errors=True,  # str(ValidationError) would otherwise quote the bad value
    )

    environment: Literal["dev", "staging", "prod"]  # required: say where you run
    port: int = Field(default=8000, ge=1, le=65535)
    debug: bool = False
    api_key: SecretStr  # required; repr, str and model_dump print **********
    db: DatabaseSettings

    @field_validator("api_key")
    @classmethod
    def long_enough(cls, key: SecretStr) -> SecretStr:
        if len(key.get_secret_value()) < MIN_API_KEY_LENGTH:  # the message never quotes the key
            raise ValueError(f"must be at least {MIN_API_KEY_LENGTH} characters")
        return key

    @model_validator(mode="after")  # runs only once every field is valid on its own
    def no_debug_in_prod(self) -> "Settings":
        if self.environment == "prod" and self.debug:
            raise ValueError(f"{ENV_PREFIX}DEBUG must be false in prod")
        return self


def load_settings(env_file: Path | None, secrets_dir: Path | None) -> Settings:
    """Read the environment, then `env_file`, then `secrets_dir` (None: skip either).

    Raises ValidationError (every bad field), or SettingsError if APP_DB={...} is not JSON:
    pydantic-settings stops at that, before it validates anything else.
    """
    settings = Settings(_env_file=env_file, _secrets_dir=secrets_dir)
    logger.info("settings loaded: %r", settings)  # SecretStr keeps key and URL out of the log
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read once: `Depends(get_settings)`. Tests call get_settings.cache_clear().

    Depends alone reads them at the first request: call it once at start-up (lifespan) too,
    so a bad configuration stops the service before its first request.
    """
    return load_settings(Path(".env"), mounted_secrets())


def mounted_secrets() -> Path | None:
    """SECRETS_DIR where it exists (pydantic-settings warns about a missing one), else None."""
    return SECRETS_DIR if SECRETS_DIR.is_dir() else None


def env_var(location: Sequence[str | int]) -> str:
    """The variable behind an error location: ("db", "pool_size") -> APP_DB__POOL_SIZE."""
    names = [str(part) for part in location if isinstance(part, str)]  # list indexes are values
    if not names:
        return "settings"  # a model validator: a rule between fields
    return ENV_PREFIX + NESTED_DELIMITER.join(names).upper()


def describe_errors(error: ValidationError) -> list[str]:
    """One line per problem, naming its variable. Never the input: it may be a secret."""
    return [f"{env_var(item['loc'])}: {item['msg']}" for item in error.errors()]


def describe_source_error(error: SettingsError) -> str:
    """One line for a value that could not be parsed, such as an APP_DB that is not JSON."""
    field = re.search(r'field "(\w+)"', str(error))  # only its message names the field
    if field is None or not isinstance(error.__cause__, json.JSONDecodeError):
        return f"settings: {error}"  # such as a secrets dir that is a file
    return f"{env_var([field.group(1)])}: not valid JSON ({error.__cause__})"  # never the value


SOURCE_NAMES: dict[type, str] = {
    sources.EnvSettingsSource: "env",
    sources.DotEnvSettingsSource: ".env",
    sources.SecretsSettingsSource: "secrets dir",
}


def flatten(values: Mapping[str, Any], parent: str = "") -> dict[str, Any]:
    """{"db": {"url": u}} -> {"db.url": u}: one entry per setting a person sets."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{parent}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def value_sources(
    settings: Settings, env_file: Path | None, secrets_dir: Path | None
) -> dict[str, str]:
    """Where each value in `settings` came from, its inputs read again: name -> source.

    Each source is pydantic-settings' own, called on its own, in the order the class gives
    them (settings_customise_sources): the first that holds a setting is the one that won.
    """
    cls = type(settings)
    order = cls.settings_customise_sources(
        cls,
        init_settings=sources.InitSettingsSource(cls, init_kwargs={}),  # none passed in code
        env_settings=sources.EnvSettingsSource(cls),
        dotenv_settings=sources.DotEnvSettingsSource(cls, env_file=env_file),
        file_secret_settings=sources.SecretsSettingsSource(cls, secrets_dir=secrets_dir),
    )
    names = flatten(settings.model_dump())  # a .env may hold variables that are not settings
    found: dict[str, str] = {}
    for source in order:
        for name in flatten(source()):
            if name in names:
                found.setdefault(name, SOURCE_NAMES.get(type(source), type(source).__name__))
    return found


# --- Demo plumbing -------------------------------------------------------------------------------
SAMPLE_API_KEY = "sample-key-0123456789abcdef0123456789abcdef"
SAMPLE_ENVIRONMENT = {"APP_ENVIRONMENT": "staging", "APP_DB__POOL_SIZE": "20"}
SAMPLE_DOTENV = "APP_DB__URL=sqlite+aiosqlite:///service.db\nAPP_DB__POOL_SIZE=5\nAPP_DEBUG=true\n"
SAMPLE_SECRETS = {"app_api_key": SAMPLE_API_KEY, "app_debug": "false"}
MASK = "**********"


def write_sample(directory: Path) -> tuple[Path, Path]:
    """A .env file and a secrets directory, as a container would have them: (env_file, dir)."""
    env_file = directory / ".env"
    env_file.write_text(SAMPLE_DOTENV, encoding="utf-8")
    secrets_dir = directory / "secrets"
    secrets_dir.mkdir()
    for name, value in SAMPLE_SECRETS.items():
        (secrets_dir / name).write_text(value, encoding="utf-8")
    return env_file, secrets_dir


def report(env_file: Path | None, secrets_dir: Path | None) -> dict[str, Any]:
    """Each setting's value (secrets masked) and where it came from; or a usage error."""
    try:
        settings = load_settings(env_file, secrets_dir)
    except ValidationError as err:
        raise BadConfiguration(describe_errors(err)) from None  # its chain holds the inputs
    except SettingsError as err:
        raise BadConfiguration([describe_source_error(err)]) from None
    values = flatten(settings.model_dump(mode="json"))  # SecretStr dumps as **********
    origins = value_sources(settings, env_file, secrets_dir)
    return {"settings": values, "sources": {name: origins.get(name, "default") for name in values}}


def show(result: Mapping[str, Any]) -> None:
    table = Table("setting", "variable", "value", "source", title="effective configuration")
    for name, value in result["settings"].items():
        shown = MASK if value == MASK else json.dumps(value)
        table.add_row(name, env_var(name.split(".")), shown, result["sources"][name])
    Console(markup=False).print(table)


# --- CLI -----------------------------------------------------------------------------------------
class BadConfiguration(click.ClickException):
    """Every problem in the configuration, one line each; exit 2 like any bad input."""

    exit_code = 2

    def __init__(self, problems: Sequence[str]) -> None:
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        super().__init__("\n".join([f"invalid configuration, {count}:", *problems]))


A_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
A_DIRECTORY = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command()
@click.option("--from-environment", is_flag=True, help="Read your environment, not a sample.")
@click.option("--env-file", type=A_FILE, help="Read this .env file, not ./.env.")
@click.option("--secrets-dir", type=A_DIRECTORY, help="Read secrets from here, not /run/secrets.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def cli(
    from_environment: bool, env_file: Path | None, secrets_dir: Path | None, as_json: bool
) -> None:
    """Show the effective configuration and where each value came from."""
    if from_environment:
        result = report(env_file or Path(".env"), secrets_dir or mounted_secrets())
    else:
        for option, given in (("--env-file", env_file), ("--secrets-dir", secrets_dir)):
            if given is not None:
                raise click.UsageError(f"{option} needs --from-environment")
        # Within the block the environment holds the sample's variables only; yours come back after.
        sample_environment = mock.patch.dict(os.environ, SAMPLE_ENVIRONMENT, clear=True)
        with tempfile.TemporaryDirectory() as tmp, sample_environment:
            sample_env_file, sample_secrets_dir = write_sample(Path(tmp))
            result = report(sample_env_file, sample_secrets_dir)
    if as_json:
        click.echo(json.dumps(result))
    else:
        show(result)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 failure, 2 bad usage, 130 Ctrl-C."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.ClickException as err:  # a UsageError is one too, with exit code 2
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except click.Abort as err:  # Ctrl-C: click's own Abort, or ours carrying the partial results
        click.echo(str(err) or "interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back here as n


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
