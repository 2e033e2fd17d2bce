#!/usr/bin/env bash
# Create or update the project-local virtual environment (.venv) from the pinned lock files.
# Idempotent and fast when nothing changed: a stamp holds the hash of the inputs it was built from.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.mtlsi-setup-stamp
want=$(cat requirements.lock requirements-nodeps.txt setup.py setup.cfg scripts/setup_env.sh | sha256sum | cut -d' ' -f1)

if [[ -f $STAMP && $(cat "$STAMP") == "$want" && -x $VENV/bin/python ]]; then
  exit 0
fi

echo "[setup] preparing $VENV (first run takes a few minutes)"
if [[ ! -x $VENV/bin/python ]]; then
  "$PYTHON" -m venv "$VENV"
fi
touch "$VENV/COLCON_IGNORE"   # keep colcon from crawling the environment
pip_install() {
  # pip warns about absent local index mirrors on some machines; keep real errors visible.
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
pip_install -r requirements.lock
pip_install --no-deps -r requirements-nodeps.txt
# setup.cfg sends scripts to lib/mtlsi_ros (where `ros2 run` looks, for colcon); in the venv they belong in bin/.
venv_cfg=$(mktemp)
printf '[develop]\nscript_dir=$base/bin\n[install]\ninstall_scripts=$base/bin\n' > "$venv_cfg"
DIST_EXTRA_CONFIG=$venv_cfg pip_install --no-deps -e .
rm -f "$venv_cfg"
rm -rf "$VENV/lib/mtlsi_ros"  # scripts of an install made without the override
echo "$want" > "$STAMP"
echo "[setup] done: $("$VENV/bin/python" -c 'import torch, rclpy, transformers; print("torch", torch.__version__, "| transformers", transformers.__version__)')"
