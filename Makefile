# The two commands of the README: `make run` (the engine on the local broker) and
# `make test`. Both use the code of this checkout (`python -m stream_mlops` from
# here), so they work before and without `pip install -e .`.

PYTHON ?= python3
SM := $(PYTHON) -m stream_mlops
PYTEST_ARGS ?=
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

.PHONY: help deps install jars test run demo lint broker-start broker-stop broker-status

help:
	@echo "make demo    the closed loop end to end on the local broker, with a report"
	@echo "make test    install what is missing, run the tests on a Kafka broker"
	@echo "make run     start the local broker, create the topics, run the engine"
	@echo "make lint    ruff and mypy --strict"

# Installs only if a requirement of pyproject.toml is missing or too old.
deps:
	@$(PYTHON) .ci/missing_requirements.py >/dev/null || $(PYTHON) -m pip install -e '.[dev]'

install:
	$(PYTHON) -m pip install -e '.[dev]'

# The broker's jars (a no-op once cached for the current pom). Without a JVM or Maven
# this fails with a one-line message saying what to install.
jars: deps
	@$(PYTHON) -c 'from stream_mlops.kafka.broker.artifacts import main; raise SystemExit(main())'

# Uses a broker that answers (KAFKA_BOOTSTRAP_SERVERS, or one already running);
# otherwise starts the local one and stops it afterwards, also when tests fail or
# are interrupted. Exits with pytest's code.
test: deps jars
	@started=0; \
	stop_started() { if [[ $$started == 1 ]]; then $(SM) broker stop; fi; }; \
	trap stop_started EXIT; \
	if ! $(PYTHON) -c 'from stream_mlops.kafka.bootstrap import bootstrap_servers as b; \
	from stream_mlops.kafka.broker.process import metadata_answers as m; \
	raise SystemExit(0 if m(b(), 3.0) else 1)'; then \
		if [[ -n "$${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then \
			echo "KAFKA_BOOTSTRAP_SERVERS=$$KAFKA_BOOTSTRAP_SERVERS does not answer" >&2; exit 1; \
		fi; \
		$(SM) broker start; started=1; \
	fi; \
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# The engine (`stream-mlops run`) against the local broker, or KAFKA_BOOTSTRAP_SERVERS.
run: deps
	$(SM) broker start
	$(SM) topics create
	$(SM) run

# The README's main command: the closed loop, with demo-report.html.
demo: deps jars
	$(SM) demo

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

broker-start:
	$(SM) broker start
broker-stop:
	$(SM) broker stop
broker-status:
	$(SM) broker status
