# amsnb: the two commands of the README.
#   make demo   create .venv, install, run the notebook series (profile default) on the embedded simulation
#   make test   create .venv, install, lint, run the whole test suite (what .ci/run calls)
# Other targets: make setup | bench | smoke | binder-data | clean.  PROFILE=smoke make demo for a quick look.

VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= default
WORKDIR ?= runs/$(PROFILE)

.PHONY: demo test setup browser lint bench smoke clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first, pinned: the builds on this machine's local disk (no resolver may pull another)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m amsnb.cli kernel
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/amsnb run --profile $(PROFILE) --workdir $(WORKDIR)

smoke:
	$(MAKE) demo PROFILE=smoke

# Debian's Chromium for the real-browser tests of the Voila apps (playwright never downloads a browser here).
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

lint: setup
	$(VENV)/bin/ruff check amsnb tests benchmarks widgets notebooks

test: setup browser lint
	$(VENV)/bin/pytest -ra

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf runs tests/artifacts benchmarks/results
