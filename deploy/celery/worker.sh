#!/bin/sh
# One Celery worker for one queue, with the settings that fit its latency class.
#   deploy/celery/worker.sh online|batch|training|monitoring
# Used by deploy/cluster, the systemd unit celery-worker@.service and docker-compose.yml, so the
# flags live in one place. Environment: the app's settings (DATABASE_URL, REDIS_URL, ...) plus
#   CELERY_BIN                            celery executable (default: `celery` on PATH)
#   CELERY_NODE_NAME                      node name (default <queue>@<host>)
#   CELERY_ONLINE_CONCURRENCY             processes for online (default: CPU count)
#   CELERY_BATCH_CONCURRENCY              processes for batch (default: CPU count)
#   CELERY_MONITORING_CONCURRENCY         processes for monitoring (default: 1)
#   CELERY_TRAINING_MAX_TASKS_PER_CHILD   training runs per process before it is replaced (default 1)
#   CELERY_WORKER_EXTRA_ARGS              appended as is
# Stop with SIGTERM: a warm shutdown finishes the running tasks, and messages that were reserved
# but not started go back to Redis for the other workers.
set -eu

queue="${1:?usage: worker.sh online|batch|training|monitoring}"
root=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$root/platform:$root${PYTHONPATH:+:$PYTHONPATH}"
cpus=$(nproc 2>/dev/null || echo 2)

case "$queue" in
  online)
    # Short, latency-sensitive tasks: take one message per process at a time, so a slow task
    # never holds others hostage in its prefetch buffer.
    opts="--concurrency ${CELERY_ONLINE_CONCURRENCY:-$cpus} --prefetch-multiplier 1"
    ;;
  batch)
    # Long chunks, acks_late + reject_on_worker_lost (workers.tasks.base.DurableTask): a killed
    # process puts its chunk back. --disable-prefetch (Redis only; ignored with a warning
    # otherwise): a chunk is fetched only for a free process, so a worker that dies holds no
    # unstarted chunks in Redis's unacked index (they would wait for the stale-chunk sweeper).
    opts="--concurrency ${CELERY_BATCH_CONCURRENCY:-$cpus} --prefetch-multiplier 1 --disable-prefetch"
    ;;
  training)
    # One training run at a time (they use every core through numpy/scikit-learn), and a fresh
    # process for each run so its memory goes back to the system.
    opts="--concurrency 1 --prefetch-multiplier 1 --max-tasks-per-child ${CELERY_TRAINING_MAX_TASKS_PER_CHILD:-1}"
    ;;
  monitoring)
    opts="--concurrency ${CELERY_MONITORING_CONCURRENCY:-1} --prefetch-multiplier 1"
    ;;
  *)
    echo "worker.sh: unknown queue '$queue' (online, batch, training, monitoring)" >&2
    exit 64
    ;;
esac

# shellcheck disable=SC2086  # $opts and the extra args are word lists on purpose
exec "${CELERY_BIN:-celery}" -A tagging_platform worker \
  --queues "$queue" \
  --hostname "${CELERY_NODE_NAME:-$queue@%h}" \
  --loglevel "${LOG_LEVEL:-INFO}" \
  $opts ${CELERY_WORKER_EXTRA_ARGS:-}
