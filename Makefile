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

.PHONY: setup system-deps package test demo clean

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
	$(VENV)/bin/pytest -q -n 2 --dist loadfile tests

# The main job: the offline `ci` task suite, scored for CREPE (real weights), the
# fbank floor (weight-free) and fusion_cat on tiny RANDOM fixture checkpoints.
PROBE ?= --grid-points 2 --probe-grid fast
demo: setup
	$(VENV)/bin/hear-gura fixtures $(DEMO)/fixtures
	$(VENV)/bin/hear-validator hear_gura.fusion_cat -m $(DEMO)/fixtures/checkpoints.json
	$(VENV)/bin/hear-gura tasks build $(DEMO)/tasks --size ci
	$(VENV)/bin/hear-gura evaluate --tasks-dir $(DEMO)/tasks --ensembles crepe,fbank,fusion_cat \
	    --model $(DEMO)/fixtures/checkpoints.json --out $(DEMO)/results $(PROBE)
	@cat $(DEMO)/results/results.md
	@echo "plot: $(DEMO)/results/results.png   table: $(DEMO)/results/results.csv"

clean:
	rm -rf $(DEMO) build *.egg-info .pytest_cache
