"""What the stack's shell scripts need from the environment, printed for them to use.

Standard library only (plus the jobs' own configuration modules, which are too), so the
scripts can run it with the system python3 before the virtualenv exists:

    python3 -m scripts.stack_env field ROLE host|port|dbname|user|redacted
    python3 -m scripts.stack_env password ROLE          (for initdb's --pwfile, never argv)
    python3 -m scripts.stack_env secret NAME            (NAME, or the file named by NAME_FILE)
    eval "$(python3 -m scripts.stack_env libpq ROLE)"   (PG* exports for psql, password included)
    eval "$(python3 -m scripts.stack_env seed)"         (the roles and passwords make seed sets)

An unknown role or a missing setting prints one error line and exits 2; with ``libpq`` and
``seed`` it is printed as shell that reports the error and exits, so ``eval`` stops the script.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence

from jobs.config.postgres_url import ROLE_VARIABLES, PostgresTarget, target_from_env
from jobs.config.secrets import secret_from_env
from jobs.core.errors import ConfigError

FIELDS = ("host", "port", "dbname", "user", "redacted")
USAGE = (
    "usage: python3 -m scripts.stack_env field ROLE FIELD | password ROLE | secret NAME "
    "| libpq ROLE | seed"
)


class _Refused(Exception):
    pass


def _target(role: str) -> PostgresTarget:
    if role not in ROLE_VARIABLES:
        raise _Refused(f"unknown role {role!r}; use one of {', '.join(ROLE_VARIABLES)}")
    try:
        return target_from_env(role=role)
    except ConfigError as error:
        raise _Refused(str(error)) from None


def _exports(values: dict[str, str]) -> str:
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in values.items())


def _seed() -> str:
    admin, pipeline, reporting = (_target(r) for r in ("admin", "pipeline", "reporting"))
    if admin.user in (pipeline.user, reporting.user):
        raise _Refused(
            f"the admin role {admin.user!r} must not be the pipeline or reporting role "
            "(POSTGRES_ADMIN_URL, POSTGRES_URL and POSTGRES_REPORTING_URL name three different users)"
        )
    # The monitoring role is optional: without POSTGRES_MONITORING_URL it is created with its
    # default name and no password (it cannot log in until one is set).
    monitoring = _target("monitoring") if os.environ.get("POSTGRES_MONITORING_URL") else None
    lines = [
        f"pipeline_role={shlex.quote(pipeline.user)}",
        f"reporting_role={shlex.quote(reporting.user)}",
        f"monitoring_role={shlex.quote(monitoring.user if monitoring else 'enrich_monitoring')}",
    ]
    passwords = {
        name: target.password
        for name, target in (
            ("ENRICH_PIPELINE_PASSWORD", pipeline),
            ("ENRICH_REPORTING_PASSWORD", reporting),
            ("ENRICH_MONITORING_PASSWORD", monitoring),
        )
        if target is not None and target.password
    }
    return "\n".join([*lines, _exports(passwords)]).rstrip("\n")


def output(argv: Sequence[str]) -> str:
    """What ``argv`` prints; raises _Refused with the message of a refusal."""
    match list(argv):
        case ["field", role, name] if name in FIELDS:
            target = _target(role)
            values = {
                "host": target.host,
                "port": str(target.port),
                "dbname": target.dbname,
                "user": target.user,
                "redacted": target.redacted(),
            }
            return values[name]
        case ["password", role]:
            return _target(role).password
        case ["secret", name]:
            try:
                return secret_from_env(os.environ, name) or ""
            except ConfigError as error:
                raise _Refused(str(error)) from None
        case ["libpq", role]:
            return _exports(_target(role).libpq_env())
        case ["seed"]:
            return _seed()
    raise _Refused(USAGE)


def main(argv: Sequence[str]) -> int:
    try:
        print(output(argv))
    except _Refused as error:
        message = f"{'seed: ' if argv[:1] == ['seed'] else ''}error: {error}"
        if argv and argv[0] in ("libpq", "seed"):
            print(f"echo {shlex.quote(message)} >&2; exit 2")  # for eval: stop the script
        else:
            print(message, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
