"""Secrets from the environment: NAME, or the file named by NAME_FILE (docker/k8s secrets).

Standard library only, so the stack scripts can use it before the virtualenv exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from jobs.core.errors import ConfigError


def secret_from_env(environ: Mapping[str, str], name: str) -> str | None:
    """The file named by ``NAME_FILE`` wins over ``NAME``; None when neither is set."""
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").rstrip("\n")
        except OSError as error:
            raise ConfigError(
                f"{name}_FILE {file_name!r} cannot be read: {error.strerror}"
            ) from None
    return environ.get(name) or None
