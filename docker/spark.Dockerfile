# The job image: Python 3.11, Java 17, the pinned Python packages and JARs, the job code.
# Everything is resolved at build time from pyproject.toml (the one place that pins versions),
# so starting a job downloads nothing. No credential is passed to or stored in the image.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless maven procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV ENRICH_CACHE_DIR=/opt/spark-enrich
COPY pyproject.toml ./
COPY scripts/ scripts/
RUN scripts/setup.sh python jars
COPY conf/ conf/
COPY jobs/ jobs/

RUN useradd --create-home --uid 10001 enrich && chown -R enrich /app
USER enrich
CMD ["scripts/submit.sh", "batch_enrich"]
