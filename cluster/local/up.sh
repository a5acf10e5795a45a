#!/usr/bin/env bash
# Start the local rehearsal cluster (head + 2 workers) and deploy the dev overlay's
# serveConfigV2 on it. Options: see `python -m cluster.local.rehearsal up --help`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RAY_USAGE_STATS_ENABLED=0 RAY_ENABLE_UV_RUN_RUNTIME_ENV=0
exec "${PYTHON:-.venv/bin/python}" -m cluster.local.rehearsal up "$@"
