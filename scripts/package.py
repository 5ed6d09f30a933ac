"""Build build/jobs.zip: the job code spark-submit ships to the driver and executors (--py-files).

Only the package's .py files go in (no caches, no tests), with fixed timestamps so the same
code always gives the same archive. Executors need nothing from the source tree or the venv.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def build(output: Path = ROOT / "build" / "jobs.zip") -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted((ROOT / "jobs").rglob("*.py")):
            info = zipfile.ZipInfo(str(source.relative_to(ROOT)), FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, source.read_bytes())
    partial.replace(output)
    return output


if __name__ == "__main__":
    path = build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "jobs.zip")
    print(path)
