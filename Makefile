# mtlsi_ros — the two commands of the README:
#   make demo   build the package with colcon, run the perception node on a synthetic camera stream,
#               write demo_output/contact_sheet.png and demo_output/summary.txt
#   make test   unit tests + node-over-DDS tests
# Both set everything up themselves (project-local .venv from requirements.lock).
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PYTHONUNBUFFERED := 1
# Keep DDS discovery on this machine (loopback / shared memory).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: help setup build demo test lock clean bench

help:
	@echo "make demo  - build and run the perception demo (writes demo_output/)"
	@echo "make test  - run the test suite"
	@echo "make setup - create/update .venv only;  make build - colcon build only;  make lock - re-pin requirements.lock"

setup:
	@bash scripts/setup_env.sh

build: setup
	@bash scripts/colcon_build.sh

demo: build
	@bash scripts/run_demo.sh $(ARGS)

test: build
	@bash scripts/run_tests.sh $(ARGS)

lock: setup
	@.venv/bin/python -m pip install -q -r requirements.in
	@.venv/bin/python scripts/freeze_lock.py > requirements.lock.tmp && mv requirements.lock.tmp requirements.lock

clean:
	rm -rf build install log demo_output .pytest_cache
