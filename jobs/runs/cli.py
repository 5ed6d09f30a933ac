"""What every entry point shares: logging set-up and turning failures into one clear line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping

from jobs.adapters.jvm_errors import describe_failure
from jobs.config.settings import Settings
from jobs.core.errors import EnrichmentError, ServiceUnavailableError

log = logging.getLogger("enrich")

_HTTP_FORBIDDEN = re.compile(r"\b403\b")


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """Optional table paths after the options, as in `spark-submit job.py RAW CURATED`: they
    override conf/enrichment.toml and the *_TABLE_PATH variables."""
    parser.add_argument("raw_table", nargs="?", help="raw Delta table (default: from conf/)")
    parser.add_argument("curated_table", nargs="?", help="curated Delta table (default: conf/)")
    parser.add_argument(
        "quarantine_table", nargs="?", help="quarantine Delta table (default: conf/)"
    )


def table_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    given = {
        "raw": args.raw_table,
        "curated": args.curated_table,
        "quarantine": args.quarantine_table,
    }
    overrides = {name: path for name, path in given.items() if path is not None}
    for name, path in overrides.items():
        if not path.startswith("s3a://"):
            parser.error(f"the {name} table must be an s3a:// path (got {path!r})")
    return overrides


def with_tables(settings: Settings, overrides: Mapping[str, str]) -> Settings:
    if not overrides:
        return settings
    tables = settings.tables
    return dataclasses.replace(
        settings,
        tables=dataclasses.replace(
            tables,
            raw=overrides.get("raw", tables.raw),
            curated=overrides.get("curated", tables.curated),
            quarantine=overrides.get("quarantine", tables.quarantine),
        ),
    )


def configure_logging() -> None:
    level = os.environ.get("ENRICH_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)


def classify_failure(error: BaseException) -> EnrichmentError:
    """Map well-known infrastructure failures seen through Spark to clear errors."""
    message = describe_failure(error)
    lowered = message.lower()
    if any(
        s in lowered
        for s in ("connection refused", "connect timed out", "unable to execute http request")
    ):
        return ServiceUnavailableError(f"a server did not answer: {message}")
    if "password authentication failed" in lowered:
        return ServiceUnavailableError(f"PostgreSQL refused the credentials: {message}")
    refused = ("accessdenied", "access denied", "invalidaccesskeyid", "signaturedoesnotmatch")
    if _HTTP_FORBIDDEN.search(lowered) or any(s in lowered for s in refused):
        return ServiceUnavailableError(f"the object store refused the credentials: {message}")
    return EnrichmentError(f"unexpected failure: {message}")


def run_main(job_name: str, body: Callable[[], int]) -> int:
    """Run ``body``; on failure log one line naming the problem and return a non-zero status."""
    configure_logging()
    try:
        return body()
    except EnrichmentError as error:
        log.error("%s failed: %s", job_name, error)
        return error.exit_code
    except KeyboardInterrupt:
        log.error("%s interrupted", job_name)
        return 130
    except Exception as error:
        clear = classify_failure(error)
        log.debug("full failure", exc_info=True)
        log.error("%s failed: %s", job_name, clear)
        return clear.exit_code or 1
