# `make test` is the test command: it installs what is missing (a virtual
# environment with requirements-dev.txt, Azurite from package-lock.json) and
# runs the whole suite against a real Azurite started by the tests themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test deps clean run bench reliability

test: deps
	$(PY) -m pytest

deps: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis

.PHONY: run
# `make run`: Azurite + the local Functions host + a demo lake, serving until Ctrl-C.
run: deps
	$(PY) -m shared_code.local.run $(ARGS)

.PHONY: bench
# `make bench`: the benchmarks recorded in BENCHMARKS.md (about 2 hours; not part of `make test`).
bench: deps
	$(PY) -m bench.decision_core 1000000 --json bench/decision_core.json
	$(PY) -m bench.decision_core 5000000 --json bench/decision_core.json
	$(PY) -m bench.scan_bench --n 20000 --rounds 3 --json bench/results.json
	$(PY) -m bench.restore_bench --n 20000 --rounds 3 --json bench/restore_results.json
	$(PY) -m bench.prune_bench --versions 20000 --real-versions 2000 --rounds 3 --json bench/prune_results.json

# `make reliability`: the fault and bad-input scenarios (also part of `make test`), then the table
# of what they measured, as RELIABILITY.md shows it.
reliability: deps
	rm -f .reliability/results.json
	$(PY) -m pytest -q -m reliability
	$(PY) -m tests.support.reliability
