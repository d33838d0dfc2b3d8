"""Shared option handling of connectors: validation, secrets, TLS, tag specs.

Every connector validates its site-file ``options`` with a pydantic model
through :func:`parse_options`, which turns a validation error into a
:class:`~autofab.errors.ConfigError` naming ``connectors.<name>.options.<field>``.
Secrets (passwords, keys) are :class:`pydantic.SecretStr` so they never appear
in logs or reprs, and any string option may be written ``${ENV_VAR}`` to take
its value from the environment. A secret option (``password``,
``key_password``, ``private_key_password``, ``token``) is refused when the
site file holds it in clear: write ``${ENV_VAR}`` or ``file:/path`` (the file's
content, e.g. a container secret, trailing newline stripped).
"""

from __future__ import annotations

import math
import os
import re
import ssl
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from autofab.core.base import Tag, TagKind
from autofab.errors import ConfigError
from autofab.site.loader import validate_section

M = TypeVar("M", bound=BaseModel)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_env(value: Any, field: str, source: str | None = None) -> Any:
    """Replace ``${NAME}`` references in strings (recursively) by environment values.

    Raises
    ------
    ConfigError
        When a referenced variable is not set (naming ``field``, never a value).
    """
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"environment variable {name} is referenced but not set",
                    source=source,
                    field=field,
                )
            return os.environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: resolve_env(v, f"{field}.{k}", source) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, f"{field}.{i}", source) for i, v in enumerate(value)]
    return value


SECRET_KEYS = frozenset({"password", "key_password", "private_key_password", "token"})
_ONLY_ENV_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def resolve_secrets(value: Any, field: str, source: str | None = None) -> Any:
    """Check and resolve secret options (recursively) before ``${ENV}`` expansion.

    A secret must be one ``${ENV_VAR}`` reference (left for :func:`resolve_env`)
    or ``file:/path``, replaced here by the file's content.

    Raises
    ------
    ConfigError
        A secret written in clear, or a secret file that cannot be read
        (naming ``field``, never the value).
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            sub = f"{field}.{k}"
            if k in SECRET_KEYS and isinstance(v, str):
                out[k] = _secret(v, sub, source)
            else:
                out[k] = resolve_secrets(v, sub, source)
        return out
    if isinstance(value, list):
        return [resolve_secrets(v, f"{field}.{i}", source) for i, v in enumerate(value)]
    return value


def _secret(value: str, field: str, source: str | None) -> str:
    if _ONLY_ENV_REF.match(value):
        return value
    if value.startswith("file:"):
        path = value.removeprefix("file:")
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the secret file {path!r}: {type(exc).__name__}",
                source=source,
                field=field,
            ) from None
    raise ConfigError(
        "a secret must not be written in clear in the site file; write ${ENV_VAR} "
        "(environment variable) or file:/path/to/secret",
        source=source,
        field=field,
    )


def parse_options(
    model: type[M], options: dict[str, Any], name: str, source: str | None = None
) -> M:
    """Validate connector ``options`` with ``model``.

    Parameters
    ----------
    model : type of BaseModel
        The connector's options model.
    options : dict
        Raw options from the site file (``${ENV}`` references allowed).
    name : str
        Connector name, used in error fields ``connectors.<name>.options.<field>``.
    source : str, optional
        Site file the options came from.
    """
    base = f"connectors.{name}.options"
    data = resolve_env(resolve_secrets(dict(options), base, source), base, source)
    return validate_section(model, data, base, source, what="option")


class StrictModel(BaseModel):
    """Options model base: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSOptions(StrictModel):
    """TLS settings of a client (MQTT).

    ``ca_file`` verifies the server; ``cert_file``/``key_file`` authenticate
    the client; ``insecure`` disables hostname checking (tests only).
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: SecretStr | None = None
    insecure: bool = False

    def context(self) -> ssl.SSLContext:
        """An SSL context built from these settings."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            pw = self.key_password.get_secret_value() if self.key_password else None
            ctx.load_cert_chain(self.cert_file, self.key_file, password=pw)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


class TagSpec(StrictModel):
    """Metadata of one tag of a connector (path relative to the connector prefix)."""

    path: str
    unit: str = "1"
    lo: float = -math.inf
    hi: float = math.inf
    kind: TagKind = TagKind.CV
    description: str = ""
    writable: bool = False

    @field_validator("lo", "hi", mode="before")
    @classmethod
    def _inf(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("inf", "+inf", "-inf"):
            return float(v)
        return v

    def to_tag(self, prefix: str | None, **meta: str) -> Tag:
        """The :class:`Tag` with ``prefix/`` prepended (when given)."""
        return Tag(
            full_path(prefix, self.path),
            self.unit,
            self.lo,
            self.hi,
            self.kind,
            self.description,
            dict(meta),
        )


def full_path(prefix: str | None, path: str) -> str:
    """``prefix/path`` (or ``path`` without a prefix)."""
    return f"{prefix.rstrip('/')}/{path}" if prefix else path
