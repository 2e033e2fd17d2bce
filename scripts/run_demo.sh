#!/usr/bin/env bash
# Run the demo against the colcon-installed package: the node in its own process, a synthetic camera over DDS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
set +u  # colcon's setup scripts read unset variables
# shellcheck disable=SC1091
source install/setup.bash
set -u
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Shared memory + UDP loopback for Fast DDS: on the LOCALHOST range alone, best-effort images >= 640x480 lose
# fragments over UDP loopback (config/fastdds_localhost_shm.xml explains).
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$PWD/config/fastdds_localhost_shm.xml}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # no busy-waiting OpenMP threads on a shared CPU
# The real NYUDv2 frames of the development machines (evaluation only; absent on a user's machine: step skipped)
REAL=()
if [ -z "${MTLSI_REAL_FRAMES:-}" ] && [ -d ../shared/data/nyud_real_samples ]; then
  REAL=(--real-data ../shared/data/nyud_real_samples)
fi
exec install/mtlsi_ros/lib/mtlsi_ros/mtlsi_demo --out demo_output "${REAL[@]}" "$@"
