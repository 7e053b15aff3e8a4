#!/usr/bin/env bash
# Regenerate the hashed lock files from pyproject.toml and dev.in (run after changing either).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet uv
common=(--universal --python-version 3.11 --generate-hashes --quiet)
python3 -m uv pip compile "${common[@]}" pyproject.toml -o requirements/runtime.txt
python3 -m uv pip compile "${common[@]}" pyproject.toml requirements/dev.in -o requirements/dev.txt
