#!/usr/bin/env bash
# Build hybrid_vla_interfaces (messages and actions, ament_cmake + rosidl) from the PyPI
# ROS wheels and install it INTO the virtualenv: libraries in .venv/lib, the Python package
# in its site-packages, share/ under .venv/share. The ROS wheels' start-up hook
# (ros_wheels_bootstrapper) puts .venv/lib on LD_LIBRARY_PATH for every venv process, and the
# venv is the ament prefix, so nodes, tests and the CLI find the interfaces with no setup
# script. `make venv` runs this; on a ROS 2 distribution colcon builds the package instead
# (README, "On a robot"). About 25 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PREFIX=$(cd "$VENV" && pwd)
BUILD=${BUILD:-build/interfaces}
mkdir -p "$(dirname "$BUILD")"
export AMENT_PREFIX_PATH="$PREFIX${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$PREFIX/bin:$PATH"
cmake -S interfaces/hybrid_vla_interfaces -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DPython3_EXECUTABLE="$PREFIX/bin/python" -DBUILD_TESTING=OFF > "$BUILD.configure.log" 2>&1 \
  || { tail -40 "$BUILD.configure.log" >&2; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" > "$BUILD.build.log" 2>&1 || { tail -40 "$BUILD.build.log" >&2; exit 1; }
cmake --install "$BUILD" > "$BUILD.install.log" 2>&1 || { tail -40 "$BUILD.install.log" >&2; exit 1; }
"$PREFIX/bin/python" -c "from hybrid_vla_interfaces.msg import Features; from hybrid_vla_interfaces.action import RunInstruction"
echo "hybrid_vla_interfaces installed into $VENV"
