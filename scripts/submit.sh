#!/usr/bin/env bash
# spark-submit one of the jobs: scripts/submit.sh JOB [job arguments...]
#   (in local mode: the job's Python, which launches the JVM itself; see below)
#   JOB is a module in jobs/ (batch_enrich, ingest, stream_enrich), or a .py file (the bench's
#   Spark floor).
#   SPARK_MASTER (default local[2]) and
#   SPARK_DRIVER_MEMORY (default 4g) choose where and how big. In local mode the driver is also
#   the executor and holds a full run's cached rows: with 2g a 10M-row full run spilled the cache,
#   spent 17 s in GC and, at 10.2M rows, died reading the cache back ("Java heap space"); with 4g
#   it took 98 s instead of 125 s (docs/performance.md). Nothing secret is on this command line:
#   credentials reach the job through the environment.
#   ENRICH_DRIVER_JVM_OPTS: more JVM options for the driver. A batch run that reads at most
#   300,000 raw rows starts its driver with the JIT's first tier only (-XX:TieredStopAtLevel=1,
#   jobs/adapters/session.py): faster to warm up, slower on large batches (docs/performance.md);
#   a -XX:TieredStopAtLevel here is kept instead (=4: the tiered JIT always). For other jobs,
#   e.g. many small ingests, give -XX:TieredStopAtLevel=1 here, with
#   -XX:ReservedCodeCacheSize=240m (the first tier alone reserves 48 MB, which a stream fills).
#   ENRICH_EXECUTOR_JVM_OPTS: the same for the executors of a cluster (spark.executor.defaultJavaOptions;
#   in local mode the executors are the driver's threads).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/spark_env.sh
source "$ROOT/scripts/spark_env.sh"
job=${1:?usage: scripts/submit.sh JOB [args...]}
shift
case "$job" in *.py) script=$job ;; *) script="$ROOT/jobs/$job.py" ;; esac
[ -f "$script" ] || { echo "error: no job $script" >&2; exit 2; }
"$ROOT/.venv/bin/python" "$ROOT/scripts/package.py" >/dev/null

# The launcher puts SPARK_CONF_DIR on the driver's class path. It gets an empty folder, and the
# settings come by path (spark-defaults.conf, log4j2.properties, enrichment.toml), so that the
# class path has no folder with files in it: the condition for the JVM's class archive below.
[ -d "$LAUNCHER_CONF_DIR" ] || mkdir -p "$LAUNCHER_CONF_DIR"
export ENRICH_CONFIG="${ENRICH_CONFIG:-$ENRICH_CONF_DIR/enrichment.toml}"
export SPARK_CONF_DIR="$LAUNCHER_CONF_DIR"
# slf4j.internal.verbosity: SLF4J 2 would report the AWS SDK's 1.x binder (slf4j-nop, see
# pyproject.toml) as an ignored binding on every run.
jvm_opts=("-Dlog4j2.configurationFile=file:$ENRICH_CONF_DIR/log4j2.properties" -Dslf4j.internal.verbosity=ERROR)
# The JIT's optimising compiler (C2) at ten times its default call and loop counts: on 2 cores
# its thread takes CPU from the tasks to optimise code a short run uses a few times, while the
# loops a large run lives in still reach it within seconds. Measured (docs/performance.md): a
# 1,000-row run 18.8 -> 17.0 s, a 10M-row full run 121.6 -> 116.6 s. ENRICH_DRIVER_JVM_OPTS,
# added after these, overrides them.
jvm_opts+=(-XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000
  -XX:Tier4CompileThreshold=150000 -XX:Tier4BackEdgeThreshold=400000)
# The parallel collector, not G1: fewer concurrent GC threads competing with 2 cores' tasks.
# Measured (docs/performance.md): a 1,000-row run 16.6 -> 15.5 s, a 10M-row full run 120.0 and
# 144.3 -> 109.8 and 117.0 s. A collector named in ENRICH_DRIVER_JVM_OPTS replaces it (the JVM
# refuses two). With it, an object that survives one young collection is promoted at once
# (MaxTenuringThreshold=1): a full run's cached batches were otherwise copied between the
# survivor spaces up to 15 times before reaching the old generation. Measured (10M full runs,
# alternated, 5 each): GC pauses 8.2-10.1 -> 6.5-8.6 s in every pair; wall within the hour's
# noise (99.3-105.2 against 96.2-106.9 s); 1,000-row runs unchanged (docs/performance.md).
case " ${ENRICH_DRIVER_JVM_OPTS:-} ${SPARK_SUBMIT_OPTS:-} " in
  *" -XX:+Use"*"GC "*) ;;
  *) jvm_opts+=(-XX:+UseParallelGC -XX:MaxTenuringThreshold=1) ;;
esac
# Class data sharing (make setup trains the archive with scripts/jvm_training.py): in local mode
# the driver maps Spark's, Delta's and Hadoop's classes instead of loading and verifying them
# from the JARs again (measured: the fault suite's incremental run 73-76 s -> 62-65 s). Other
# masters have another class path; the JVM also refuses an archive another JVM wrote, so a
# stale one only costs time.
case "${SPARK_MASTER:-local}" in
  local*)
    if [ -n "${ENRICH_JVM_ARCHIVE_DUMP:-}" ]; then
      jvm_opts+=("-XX:ArchiveClassesAtExit=$ENRICH_JVM_ARCHIVE_DUMP" -Xlog:cds=error -Xlog:cds+dynamic=error)
    elif [ -f "$JVM_ARCHIVE" ]; then
      jvm_opts+=("-XX:SharedArchiveFile=$JVM_ARCHIVE" -Xlog:cds=off -Xlog:cds+dynamic=off)
    fi ;;
esac
export SPARK_SUBMIT_OPTS="${jvm_opts[*]} ${ENRICH_DRIVER_JVM_OPTS:-} ${SPARK_SUBMIT_OPTS:-}"
# pyspark's own folder, not the .venv link, so the class path is the same from every clone.
SPARK_HOME=$(realpath "$ROOT"/.venv/lib/python3.*/site-packages/pyspark)
export SPARK_HOME
extra_args=()
[ -z "${ENRICH_EXECUTOR_JVM_OPTS:-}" ] ||
  extra_args+=(--conf "spark.executor.defaultJavaOptions=$ENRICH_EXECUTOR_JVM_OPTS")
# Spark's progress bar redraws one terminal line; written to a file or a pipe it is a wall of
# carriage returns between the log lines.
[ -t 2 ] || extra_args+=(--conf spark.ui.showConsoleProgress=false)
submit_args=(--master "${SPARK_MASTER:-local[2]}"
  --driver-memory "${SPARK_DRIVER_MEMORY:-4g}"
  --properties-file "$ENRICH_CONF_DIR/spark-defaults.conf"
  "${SPARK_JAR_ARGS[@]}" "${extra_args[@]}"
  --py-files "$ROOT/build/jobs.zip")
# In local mode the job's Python starts first, and pyspark launches the JVM with the same
# arguments (PYSPARK_SUBMIT_ARGS) when the job opens its session: a run with nothing to do, or
# refused before it needs Spark (a setting missing, a server down, the tables locked), starts
# no JVM and ends ~2 s sooner (docs/performance.md). The stream keeps spark-submit: its signal
# handling below relies on the JVM being the Python driver's parent.
submit=("$SPARK_HOME/bin/spark-submit" "${submit_args[@]}" "$script" "$@")
if [ "$job" != stream_enrich ]; then
  case "${SPARK_MASTER:-local}" in
    local*)
      export PYSPARK_SUBMIT_ARGS="${submit_args[*]@Q} pyspark-shell"
      export PYTHONPATH="$ROOT/build/jobs.zip${PYTHONPATH:+:$PYTHONPATH}"
      exec "$PYSPARK_DRIVER_PYTHON" "$script" "$@" ;;
  esac
  exec "${submit[@]}"
fi

# The stream stops after its micro-batch in progress on SIGTERM or Ctrl-C. The JVM would run its
# shutdown hooks at once and stop Spark under that micro-batch, so it starts with both signals
# ignored (HotSpot then installs no handler for them) and this shell hands them to the Python
# driver, the JVM's child, which stops the query between micro-batches and exits.
(trap '' INT TERM && exec "${submit[@]}") &
jvm=$!
stop_driver() { pkill -TERM -P "$jvm" 2>/dev/null || true; }
trap stop_driver INT TERM
# A trapped signal ends `wait` early; the job's own exit status is the last wait's.
while kill -0 "$jvm" 2>/dev/null; do wait "$jvm" || true; done
status=0
wait "$jvm" || status=$?
exit "$status"
