#!/usr/bin/env bash
# The test suite: unit tests of mtlsi_core and tests that run the colcon-installed node in its own process
# over real DDS. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Shared memory + UDP loopback for Fast DDS: on the LOCALHOST range alone, best-effort images >= 640x480 lose
# fragments over UDP loopback (config/fastdds_localhost_shm.xml explains).
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$PWD/config/fastdds_localhost_shm.xml}
# OpenMP threads that spin while waiting make torch 10-50x slower on a loaded shared CPU (measured: tiny model
# 50 ms -> 0.2-7 s per image at load 6 on 2 cores); tests favour passive waiting over idle-machine latency.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# The model cache of backend auto (ONNX exports of the checkpoints the tests use) stays in the build folder, not in
# the user's ~/.cache/mtlsi_ros; tests of the cache's own folder rules set and unset it themselves.
export MTLSI_CACHE_DIR=${MTLSI_CACHE_DIR:-$PWD/build/test_model_cache}
exec python -m pytest "$@"  # pytest.ini: testpaths = test
