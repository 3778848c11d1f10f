"""Service settings from defaults, environment variables and command-line flags.

Each service declares one settings class: a pydantic model whose fields carry a
description and bounds. `load()` turns it into an argparse parser (so `--help`
documents every flag together with its environment variable and default),
reads the environment, lets flags win, validates, and exits with a readable
message on a bad value instead of a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, SecretStr, ValidationError
from pydantic.fields import FieldInfo


def setting(
    default: Any,
    description: str,
    *,
    env: str | None = None,
    **constraints: Any,
) -> Any:
    """A settings field: a default, what it means, and optionally a fixed env var name.

    Without `env`, the variable is the class's `env_prefix` + the upper-cased field name.
    """
    extra: dict[str, JsonValue] | None = {"env": env} if env else None
    return Field(default, description=description, json_schema_extra=extra, **constraints)


class Settings(BaseModel):
    """Base of every service's settings."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    env_prefix: ClassVar[str] = ""
    program: ClassVar[str] = ""

    @classmethod
    def env_name(cls, field_name: str) -> str:
        field = cls.model_fields[field_name]
        extra = field.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("env"), str):
            return str(extra["env"])
        return f"{cls.env_prefix}{field_name.upper()}"

    @classmethod
    def flag_name(cls, field_name: str) -> str:
        return "--" + field_name.replace("_", "-")

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=cls.program or None,
            description=cls.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="Every flag can also be set by the environment variable shown; flags win.",
        )
        for name, field in cls.model_fields.items():
            _add_argument(parser, cls.flag_name(name), name, field, cls.env_name(name))
        return parser

    @classmethod
    def load(
        cls,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Self:
        """Settings from `environ` (default: the process environment) overridden by `argv`."""
        environ = os.environ if environ is None else environ
        parser = cls.parser()
        args = vars(parser.parse_args(sys.argv[1:] if argv is None else list(argv)))
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            env = cls.env_name(name)
            if env in environ:
                values[name] = environ[env]
            if name in args:
                values[name] = args[name]
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            parser.error(cls._explain(exc))

    @classmethod
    def _explain(cls, exc: ValidationError) -> str:
        lines = ["invalid settings:"]
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            where = name
            if name in cls.model_fields:
                where = f"{cls.flag_name(name)} / {cls.env_name(name)}"
            lines.append(f"  {where}: {error['msg']} (got {error.get('input')!r})")
        return "\n".join(lines)

    def describe(self) -> dict[str, Any]:
        """The effective settings for a start-up log line, secrets masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            out[name] = "***" if isinstance(value, SecretStr) and value else value
        return out


def _add_argument(
    parser: argparse.ArgumentParser, flag: str, dest: str, field: FieldInfo, env: str
) -> None:
    annotation = field.annotation
    default = field.get_default(call_default_factory=True)
    shown = "***" if isinstance(default, SecretStr) else default
    if isinstance(shown, Enum):
        shown = shown.value
    help_text = f"{field.description or ''} [env {env}; default: {shown}]"
    kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": help_text}
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        choices = _choices(annotation)
        if choices:
            kwargs["choices"] = choices
        kwargs["metavar"] = _metavar(annotation, dest)
    parser.add_argument(flag, **kwargs)


def _choices(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(v) for v in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(member.value) for member in annotation]
    return None


def _metavar(annotation: Any, dest: str) -> str | None:
    if _choices(annotation):
        return None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    names = {int: "N", float: "X", str: "TEXT", SecretStr: "SECRET"}
    return names.get(annotation, dest.upper())
