"""Parse a libpq URL (``POSTGRES_URL`` and its siblings) into what psql, psycopg2 and JDBC need.

Standard library only, so the stack scripts can use it before the virtualenv exists.
Each database role the project uses has a URL variable and a password variable; the password
may also come from a ``*_FILE`` file (docker secrets), and wins over one written in the URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from jobs.config.secrets import secret_from_env
from jobs.core.errors import ConfigError

# role -> (URL variable, password variable). The jobs log in as the pipeline role; seeding and
# migrations as the admin; dashboards and `make psql` as the read-only reporting role.
ROLE_VARIABLES = {
    "pipeline": ("POSTGRES_URL", "POSTGRES_PASSWORD"),
    "admin": ("POSTGRES_ADMIN_URL", "POSTGRES_ADMIN_PASSWORD"),
    "reporting": ("POSTGRES_REPORTING_URL", "POSTGRES_REPORTING_PASSWORD"),
    # The Prometheus PostgreSQL exporter's (make monitor-up); optional for the jobs.
    "monitoring": ("POSTGRES_MONITORING_URL", "POSTGRES_MONITORING_PASSWORD"),
}

# libpq parameters that pgjdbc understands under the same name.
_JDBC_PASSTHROUGH = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout")


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)
    params: tuple[tuple[str, str], ...] = ()

    @property
    def sslmode(self) -> str:
        return dict(self.params).get("sslmode", "prefer")

    def redacted(self) -> str:
        """The URL with the password left out: safe for logs and messages."""
        query = "&".join(f"{key}={value}" for key, value in self.params)
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}" + (
            f"?{query}" if query else ""
        )

    def jdbc_url(self) -> str:
        """A JDBC URL without credentials: user and password travel as connection properties."""
        params = dict(self.params)
        jdbc_params = [(key, params[key]) for key in _JDBC_PASSTHROUGH if key in params]
        if "connect_timeout" in params:
            jdbc_params = [(k, v) for k, v in jdbc_params if k != "connect_timeout"]
            jdbc_params.append(("connectTimeout", params["connect_timeout"]))
        query = "&".join(f"{key}={quote(value, safe='/')}" for key, value in jdbc_params)
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.dbname}" + (
            f"?{query}" if query else ""
        )

    def psycopg2_kwargs(self) -> dict[str, str | int]:
        kwargs: dict[str, str | int] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "connect_timeout": 10,
            "application_name": "spark-enrich",
        }
        kwargs.update(dict(self.params))
        return kwargs

    def libpq_env(self) -> dict[str, str]:
        """Environment variables for psql and other libpq tools (no password on a command line)."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGDATABASE": self.dbname,
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
        }
        names = {
            "sslmode": "PGSSLMODE",
            "sslrootcert": "PGSSLROOTCERT",
            "sslcert": "PGSSLCERT",
            "sslkey": "PGSSLKEY",
            "connect_timeout": "PGCONNECT_TIMEOUT",
        }
        for key, value in self.params:
            if key in names:
                env[names[key]] = value
        return env


def parse_postgres_url(
    url: str, environ: Mapping[str, str] | None = None, role: str = "pipeline"
) -> PostgresTarget:
    """Parse a ``postgresql://user:password@host:port/dbname?sslmode=...`` URL."""
    environ = os.environ if environ is None else environ
    url_var, password_var = ROLE_VARIABLES[role]
    if not url:
        raise ConfigError(f"{url_var} is not set (expected postgresql://user@host:port/dbname)")
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"{url_var} must start with postgresql:// (got scheme {parts.scheme!r})")
    try:
        port = parts.port or 5432
    except ValueError as error:
        raise ConfigError(f"{url_var} has an invalid port: {error}") from None
    host = parts.hostname or ""
    dbname = unquote(parts.path.lstrip("/"))
    user = unquote(parts.username or "")
    missing = [
        name for name, value in (("host", host), ("database", dbname), ("user", user)) if not value
    ]
    if missing:
        raise ConfigError(f"{url_var} has no {', '.join(missing)}")
    from_env = secret_from_env(environ, password_var)
    password = unquote(parts.password or "") if from_env is None else from_env
    params = tuple(parse_qsl(parts.query, keep_blank_values=True))
    return PostgresTarget(host, port, dbname, user, password, params)


def target_from_env(
    environ: Mapping[str, str] | None = None, role: str = "pipeline"
) -> PostgresTarget:
    environ = os.environ if environ is None else environ
    return parse_postgres_url(environ.get(ROLE_VARIABLES[role][0], ""), environ, role)


def url_without_password(target: PostgresTarget, dbname: str | None = None) -> str:
    """``target`` as a URL (database ``dbname`` if given); the password stays in its variable."""
    params = "&".join(f"{key}={value}" for key, value in target.params)
    return f"postgresql://{target.user}@{target.host}:{target.port}/{dbname or target.dbname}" + (
        f"?{params}" if params else ""
    )


def env_for_database(environ: Mapping[str, str], dbname: str) -> dict[str, str]:
    """``environ`` with every role's URL pointed at database ``dbname`` (passwords unchanged)."""
    changed = dict(environ)
    for role, (url_var, _) in ROLE_VARIABLES.items():
        changed[url_var] = url_without_password(target_from_env(environ, role=role), dbname)
    return changed
