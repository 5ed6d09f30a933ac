# Two images from one file; everything is resolved at build time from pyproject.toml (the one
# place that pins versions), so starting a job downloads nothing, and no credential is passed
# to or stored in either image.
#
#   job  (default): Python 3.11 + Java 17 + pip's pyspark, the JARs and the job code. Used by
#                   docker-compose.yml for the job runner, the master and the workers.
#   k8s:            Spark's official image (its entrypoint runs driver and executor pods) with
#                   the same JARs, the runtime Python packages and the job code:
#                   docker build --target k8s -f docker/spark.Dockerfile -t REGISTRY/spark-enrich:k8s .

FROM python:3.11-slim-bookworm AS job

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless maven procps postgresql-client \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV ENRICH_CACHE_DIR=/opt/spark-enrich
COPY pyproject.toml ./
COPY scripts/ scripts/
RUN scripts/setup.sh python jars \
 && python3 scripts/versions.py runtime-requirements > /opt/spark-enrich/runtime-requirements.txt \
 && cp "$(python3 scripts/versions.py jar-dir)"/*.jar /opt/spark-enrich/ \
 && rm -rf /root/.m2
COPY conf/ conf/
COPY jobs/ jobs/
RUN .venv/bin/python scripts/package.py /opt/spark-enrich/jobs.zip \
 && scripts/setup.sh jvm-archive

RUN useradd --create-home --uid 10001 enrich && chown -R enrich /app
USER enrich
CMD ["scripts/submit.sh", "batch_enrich"]


FROM apache/spark:4.2.0-scala2.13-java17-python3-ubuntu AS k8s
USER root
COPY --from=job /opt/spark-enrich/*.jar /opt/spark/jars/
COPY --from=job /opt/spark-enrich/runtime-requirements.txt /opt/spark-enrich/jobs.zip /opt/spark-enrich/
# delta-spark's pip metadata asks for pyspark, which this image already has as Spark itself.
RUN pip install --no-cache-dir --no-deps $(grep '^delta-spark' /opt/spark-enrich/runtime-requirements.txt) \
 && grep -v '^delta-spark' /opt/spark-enrich/runtime-requirements.txt > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt
COPY conf/ /opt/spark-enrich/conf/
COPY jobs/ /opt/spark-enrich/jobs/
ENV SPARK_CONF_DIR=/opt/spark-enrich/conf
USER spark
