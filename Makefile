# hear_gura: `make demo` runs the main job, `make test` the tests. Both set up
# everything they need first (Debian packages, .venv with the pinned working set,
# the package itself), so each works on a fresh clone.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
DEMO := demo

# Model hubs are unreachable on our machines; without this every cache miss
# in transformers waits ~60 s before failing. Override with HF_HUB_OFFLINE=0.
export HF_HUB_OFFLINE ?= 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup system-deps package test demo demo-full clean

setup: system-deps $(STAMP) package

# Debian packages (sound sources for the task builder) from debian-packages.txt.
system-deps:
	@missing=$$(for p in $$(grep -v '^#' debian-packages.txt 2>/dev/null); do \
	    dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	grep '^# no-deps:' requirements.txt | cut -d' ' -f3 | \
	    xargs $(PY) -m pip install -q --disable-pip-version-check --no-deps --ignore-requires-python
	touch $@

# The package itself, reinstalled every time (a few seconds) so tests and the
# demo always run the code in this checkout, ensembles/ and the compat hook included.
package: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation .
	rm -rf build hear_gura.egg-info

test: setup
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --durations=12 tests

# The main job, end to end in minutes: tiny RANDOM fixture checkpoints,
# hear-validator on fusion_cat, three offline `ci` tasks (pitch, spoken words,
# sound events), CREPE (real weights) against the fbank floor (weight-free)
# through heareval's runners (probe grid fast, 1 point), the table and the plot.
# eval_scripts/demo.py prints each command and writes $(DEMO)/timings.json.
demo: setup
	$(PY) eval_scripts/demo.py $(DEMO)

# The longer evaluation: all nine `ci` tasks, fusion_cat (RANDOM fixture
# weights) as a third row, the probe settings of the --size full table.
demo-full: setup
	$(PY) eval_scripts/demo.py $(DEMO)-full --full

clean:
	rm -rf $(DEMO) $(DEMO)-full build *.egg-info .pytest_cache
