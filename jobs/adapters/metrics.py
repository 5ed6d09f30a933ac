"""Each run's metrics, pushed to a Prometheus Pushgateway (PUSHGATEWAY_URL) when it ends.

One group per job and curated table (``/metrics/job/spark_enrich/pipeline/<job>/table@base64/…``),
pushed with POST: a failed run replaces its status and end time but keeps the last success's
timestamp, which is what "no successful run for N hours" alerts on. Monitoring never fails a
run: a Pushgateway that does not answer is noted in the log, nothing more.
"""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping

log = logging.getLogger("enrich.metrics")

# Pushgateways found not answering in this process: a stream pushes after every micro-batch,
# and one line saying so is enough until a push gets through again.
_unreachable: set[str] = set()

PREFIX = "enrich_"
# name -> help; every series a run may push (conf/prometheus/alerts.yml and the Grafana
# dashboard use these names; tests/unit/test_monitoring.py checks they agree).
HELP = {
    "run_success": "1 if the last run succeeded (or had nothing to do), 0 if it failed",
    "run_last_finished_timestamp_seconds": "when the last run ended",
    "run_last_success_timestamp_seconds": "when the last successful run ended",
    "run_duration_seconds": "wall time of the last run",
    "run_rows_read": "raw rows the last run read",
    "run_rows_curated": "rows the last run wrote to curated",
    "run_rows_quarantined": "rows the last run sent to quarantine",
    "run_rows_unmatched": "curated rows of the last run with no match in the first lookup",
    "run_rows_duplicate": "duplicate rows the last run dropped",
    "raw_lag_versions": "raw table versions not yet processed after the last run",
    "stream_lag_seconds": "from the oldest landed file of the last micro-batch to its commit",
    "lookups_age_seconds": "age of the lookups the last run or micro-batch joined with",
}


def _label_path(name: str, value: str) -> str:
    encoded = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
    return f"{name}@base64/{encoded or '='}"


def exposition(values: Mapping[str, float]) -> str:
    """The text format of ``values`` (names without the prefix)."""
    lines = []
    for name, value in values.items():
        assert name in HELP, name
        lines += [
            f"# HELP {PREFIX}{name} {HELP[name]}",
            f"# TYPE {PREFIX}{name} gauge",
            f"{PREFIX}{name} {float(value)!r}",
        ]
    return "\n".join(lines) + "\n"


def push(url: str | None, job_name: str, curated_table: str, values: Mapping[str, float]) -> bool:
    """POST ``values`` to the Pushgateway at ``url``; False (and a log line) if it did not take them."""
    if not url:
        return False
    target = (
        f"{url.rstrip('/')}/metrics/job/spark_enrich/pipeline/{job_name}/"
        f"{_label_path('table', curated_table)}"
    )
    request = urllib.request.Request(
        target,
        data=exposition(values).encode(),
        method="POST",
        headers={"Content-Type": "text/plain; version=0.0.4"},
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            response.read()
    except urllib.error.HTTPError as error:
        log.warning("metrics not pushed: the Pushgateway at %s answered %s", url, error.code)
        return False
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        log.log(
            logging.DEBUG if url in _unreachable else logging.INFO,
            "metrics not pushed: no Pushgateway at %s (%s; make monitor-up starts one)",
            url,
            reason,
        )
        _unreachable.add(url)
        return False
    if url in _unreachable:
        _unreachable.discard(url)
        log.info("metrics pushed to the Pushgateway at %s again", url)
    return True
