"""Print pinned versions and cache paths from pyproject.toml for the shell scripts and Makefile.

Usage: python3 scripts/versions.py <key> [<key>...]   (one value a line)
Keys: venv-key, python-requirements, runtime-requirements, jars (one ``group:artifact:version`` a line),
      jar-dir, jvm-archive, launcher-conf-dir, minio-release, minio-module, minio-bin,
      postgres-package, monitoring-packages, cache-dir, composecheck-bin.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spark-enrich"
    return Path(os.environ.get("ENRICH_CACHE_DIR", default))


def load_pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def python_requirements(project: dict[str, Any]) -> list[str]:
    return [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["dev"],
        *project["project"]["optional-dependencies"]["bench"],
    ]


def jar_coordinates(project: dict[str, Any]) -> list[str]:
    jars: dict[str, str] = project["tool"]["enrich"]["jars"]
    return [f"{name}:{version}" for name, version in jars.items()]


def short_hash(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def _composecheck_hash() -> str:
    sources = ("main.go", "go.mod", "go.sum")
    digest = hashlib.sha256()
    for name in sources:
        digest.update((ROOT / "tools" / "composecheck" / name).read_bytes())
    return digest.hexdigest()[:12]


def _java_identity() -> str:
    """Which JVM spark-submit starts (``$JAVA_HOME/bin/java`` when JAVA_HOME is set, as Spark's
    launcher does, else `java` on the PATH): its home, release file and libjvm's size and time,
    without starting it. A class archive is only valid for the JVM that wrote it; the JVM
    refuses any other one."""
    java_home = os.environ.get("JAVA_HOME")
    found = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if found is None:
        return "no java"
    home = Path(found).resolve().parent.parent
    release = home / "release"
    libjvm = home / "lib" / "server" / "libjvm.so"
    parts = [str(home), release.read_text() if release.exists() else ""]
    if libjvm.exists():
        stat = libjvm.stat()
        parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(parts)


def jvm_archive(venv_key: str, jars: list[str]) -> Path:
    """The class data sharing archive of the jobs' driver JVM (scripts/jvm_training.py): one per
    JVM, Python environment (pyspark's JARs), JAR set and training workload, since it records
    the classes that workload loads from them."""
    workload = (ROOT / "scripts" / "jvm_training.py").read_bytes()
    key = [_java_identity(), venv_key, *jars, hashlib.sha256(workload).hexdigest()]
    return cache_dir() / f"jvm-archive-{short_hash(key)}.jsa"


def value(key: str) -> str:
    project = load_pyproject()
    servers = project["tool"]["enrich"]["servers"]
    requirements = python_requirements(project)
    jars = jar_coordinates(project)
    venv_key = (
        f"py{sys.version_info.major}{sys.version_info.minor}-{short_hash(sorted(requirements))}"
    )
    if key == "jvm-archive":  # looks at the JVM on disk: only computed when asked for
        return str(jvm_archive(venv_key, jars))
    values: dict[str, str] = {
        "cache-dir": str(cache_dir()),
        "venv-key": venv_key,
        "python-requirements": "\n".join(requirements),
        # What a Spark image that already has pyspark needs to run the jobs.
        "runtime-requirements": "\n".join(
            r for r in project["project"]["dependencies"] if not r.startswith("pyspark")
        ),
        "jars": "\n".join(jars),
        "jar-dir": str(cache_dir() / f"jars-{short_hash(jars)}"),
        # An empty folder: the launcher puts SPARK_CONF_DIR on the class path, and a class
        # archive can only be used with a class path whose folders are empty.
        "launcher-conf-dir": str(cache_dir() / "spark-launcher-conf"),
        "minio-release": str(servers["minio_release"]),
        "minio-module": str(servers["minio_module"]),
        "minio-bin": str(cache_dir() / f"minio-{servers['minio_release']}" / "minio"),
        "postgres-package": str(servers["postgres_debian_package"]),
        "monitoring-packages": str(servers["monitoring_debian_packages"]),
        "composecheck-bin": str(cache_dir() / f"composecheck-{_composecheck_hash()}"),
    }
    if key not in values:
        raise SystemExit(f"unknown key {key!r}; known: {', '.join(sorted(values))}")
    return values[key]


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for name in sys.argv[1:]:
        print(value(name))
