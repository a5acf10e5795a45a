#!/usr/bin/env bash
# Stop the local rehearsal cluster that up.sh started and drop its database.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-.venv/bin/python}" -m cluster.local.rehearsal down
