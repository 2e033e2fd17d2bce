#!/usr/bin/env bash
# colcon build of the repo root into build/ and install/ (the package is ros.ament_python).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
colcon build --base-paths . --build-base build --install-base install \
  --event-handlers console_cohesion- console_stderr- status- summary+ "$@"
