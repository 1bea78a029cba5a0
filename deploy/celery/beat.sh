#!/bin/sh
# Celery beat with the django-celery-beat DatabaseScheduler (schedules are rows, edited in the
# admin). Run exactly ONE beat per deployment: two would send every periodic task twice.
#   deploy/celery/beat.sh
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$root/platform:$root${PYTHONPATH:+:$PYTHONPATH}"
exec "${CELERY_BIN:-celery}" -A tagging_platform beat \
  --scheduler django_celery_beat.schedulers:DatabaseScheduler \
  --loglevel "${LOG_LEVEL:-INFO}"
