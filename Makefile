# The README's commands. Everything runs in the project's virtual environment,
# .venv/ in this checkout: make creates it with $(PYTHON) when it is missing,
# installs this checkout into it (editable, with the extras the target needs)
# when a requirement is missing or too old, and runs every recipe with its
# python. Nothing is installed into the interpreter first on PATH.
#
#   make test                       # python3 makes the venv
#   make test PYTHON=python3.12     # another interpreter for a new venv

PYTHON ?= python3
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
SM := $(VENV_PYTHON) -m stream_mlops
PYTEST_ARGS ?=
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

.PHONY: help venv deps deps-core deps-demo install jars test test-failover run demo lint \
	broker-start broker-stop broker-status

help:
	@echo "make demo    the closed loop end to end on the local broker, with a report"
	@echo "make test    install what is missing, run the tests on a Kafka broker"
	@echo "make test-failover  only the three-node failover tests (brokers killed; part of make test)"
	@echo "make run     start the local broker, create the topics, run the engine"
	@echo "make lint    ruff and mypy --strict"
	@echo "make install the stream-mlops command in $(VENV)/bin (source $(VENV)/bin/activate)"

$(VENV_PYTHON):
	@echo "creating the virtual environment $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV) || { \
		rm -rf $(VENV); \
		echo "make: '$(PYTHON) -m venv' failed; on Debian: apt-get install python3-venv," \
			"or name another Python 3.11+ with PYTHON=..." >&2; \
		exit 1; }

venv: $(VENV_PYTHON)

# $(call requires,EXTRAS): install this checkout into the venv with EXTRAS (a
# comma-separated list, possibly empty) unless everything is there already.
requires = $(VENV_PYTHON) .ci/missing_requirements.py $(subst $(comma), ,$(1)) >/dev/null \
	|| $(VENV_PYTHON) -m pip install --disable-pip-version-check -e '.$(if $(1),[$(1)])'
comma := ,

deps-core: $(VENV_PYTHON)
	@$(call requires,)

deps-demo: $(VENV_PYTHON)
	@$(call requires,demo)

deps: $(VENV_PYTHON)
	@$(call requires,dev)

install: $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --disable-pip-version-check -e '.[dev]'

# The broker's jars (a no-op once cached for the current pom). Without a JVM or Maven
# this fails with a one-line message saying what to install.
jars: deps-core
	@$(VENV_PYTHON) -c 'from stream_mlops.kafka.broker.artifacts import main; raise SystemExit(main())'

# Uses a broker that answers (KAFKA_BOOTSTRAP_SERVERS, or one already running);
# otherwise starts the local one and stops it afterwards, also when tests fail or
# are interrupted. Exits with pytest's code.
test: deps jars
	@started=0; \
	stop_started() { if [[ $$started == 1 ]]; then $(SM) broker stop; fi; }; \
	trap stop_started EXIT; \
	if ! $(VENV_PYTHON) -c 'from stream_mlops.kafka.bootstrap import bootstrap_servers as b; \
	from stream_mlops.kafka.broker.process import metadata_answers as m; \
	raise SystemExit(0 if m(b(), 3.0) else 1)'; then \
		if [[ -n "$${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then \
			echo "KAFKA_BOOTSTRAP_SERVERS=$$KAFKA_BOOTSTRAP_SERVERS does not answer" >&2; exit 1; \
		fi; \
		$(SM) broker start; started=1; \
	fi; \
	$(VENV_PYTHON) -m pytest $(PYTEST_ARGS)

# Only the failover tests (also part of make test): they start their own
# three-node cluster on free ports and need no other broker.
test-failover: deps jars
	$(VENV_PYTHON) -m pytest -m failover tests/kafka/broker/test_failover.py

# The engine (`stream-mlops run`) against the local broker, or KAFKA_BOOTSTRAP_SERVERS.
run: deps-core
	$(SM) broker start
	$(SM) topics create
	$(SM) run

# The README's main command: the closed loop, with demo-report.html.
demo: deps-demo jars
	$(SM) demo

lint: deps
	$(VENV_PYTHON) -m ruff check .
	$(VENV_PYTHON) -m ruff format --check .
	$(VENV_PYTHON) -m mypy

broker-start: deps-core
	$(SM) broker start
broker-stop: deps-core
	$(SM) broker stop
broker-status: deps-core
	$(SM) broker status
