# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

MVN    ?= mvn
JARS   := jars

.PHONY: run test java jars clean sql-server kafka

# extra options for `c360 run`, e.g. make run RUN_ARGS="--region de --as-of 2026-03-31"
RUN_ARGS ?=

run: java jars $(VENV)/.installed-run ## run the whole pipeline locally on sample data
	$(VENV)/bin/c360 run $(RUN_ARGS)

# test processes (each with its own local Spark session); 2 fits the 2-core CI machine
TEST_WORKERS ?= 2

test: java jars $(VENV)/.installed-dev ## run the whole test suite (every tier that needs no cluster)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

# finance's JDBC/ODBC endpoint on loopback (README: "Finance over JDBC"); needs C360_ROLE_SIGNING_KEY
SQL_ROLE ?= finance
SQL_PORT ?= 10000

sql-server: java jars $(VENV)/.installed-run ## serve one role's SQL on jdbc:hive2://127.0.0.1:$(SQL_PORT)/
	$(VENV)/bin/c360 sql-server --role $(SQL_ROLE) --port $(SQL_PORT)

# a single-node Kafka broker (KRaft) on loopback for the Kafka source (README: "Web events from Kafka")
KAFKA_PORT ?= 9092

kafka: java jars $(VENV)/.installed-run ## run a Kafka broker on 127.0.0.1:$(KAFKA_PORT), data in .kafka/
	$(VENV)/bin/c360 kafka-broker --port $(KAFKA_PORT) --dir .kafka

java:
	@ver=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1); \
	if [ -z "$$ver" ] || [ "$$ver" -lt 17 ]; then \
	  echo "Java 17 or newer is required by Spark (found: $${ver:-none})."; \
	  echo "Install it with:  sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless"; \
	  echo "(macOS: brew install openjdk@17), then make sure 'java -version' reports 17+."; \
	  exit 1; \
	fi

# The JVM jars (Delta Lake, Kafka source; GraphFrames where the registry has it), copied once with
# their runtime dependencies into jars/ by Maven (and a Kafka broker's into jars/kafka/, for the tests
# and `make kafka`), which reads its own settings for where to download
# from. Without Maven (an offline laptop) the pipeline runs on delta-rs and says so.
jars: $(JARS)/.fetched $(JARS)/kafka/.fetched

$(JARS)/.fetched: infra/jvm/pom.xml infra/jvm/graphframes/pom.xml
	@if ! command -v $(MVN) >/dev/null 2>&1; then \
	  echo "Maven not found: no Delta Lake / GraphFrames jars; the pipeline will use delta-rs (install: sudo apt-get install -y maven)"; \
	else \
	  rm -rf $(JARS) && mkdir -p $(JARS) && \
	  if ! $(MVN) -q -B -f infra/jvm/pom.xml dependency:copy-dependencies >$(JARS)/fetch.log 2>&1; then \
	    rm -f $(JARS)/*.jar; echo "Maven could not fetch the jars of infra/jvm/pom.xml (offline? see $(JARS)/fetch.log): the pipeline will use delta-rs"; \
	  else \
	    if ! $(MVN) -q -B -f infra/jvm/graphframes/pom.xml dependency:copy-dependencies >$(JARS)/graphframes-fetch.log 2>&1; then \
	      echo "GraphFrames jar (infra/jvm/graphframes/pom.xml) could not be fetched: connected components will use the DataFrame algorithm (details: $(JARS)/graphframes-fetch.log)"; \
	    fi; \
	    touch $@; \
	  fi; \
	fi

# the broker's own stamp: a failed fetch (offline) is tried again by the next make, and costs only
# the loopback broker (make kafka, tests/bronze/test_kafka.py), never the pipeline
$(JARS)/kafka/.fetched: infra/jvm/kafka/pom.xml $(JARS)/.fetched
	@if ! command -v $(MVN) >/dev/null 2>&1; then \
	  echo "Maven not found: no Kafka broker jars for make kafka and the Kafka tests"; \
	elif $(MVN) -q -B -f infra/jvm/kafka/pom.xml dependency:copy-dependencies >$(JARS)/kafka-fetch.log 2>&1; then \
	  touch $@; \
	else \
	  rm -rf $(JARS)/kafka; echo "Kafka broker jars (infra/jvm/kafka/pom.xml) could not be fetched: no loopback broker for make kafka and the Kafka tests (details: $(JARS)/kafka-fetch.log)"; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: setup.py | $(VENV)/bin/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: setup.py | $(VENV)/bin/python
	$(PIP) install -q -e ".[dev]"
	touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) $(JARS) lakehouse mlruns spark-warehouse .pytest_cache build *.egg-info lib/*.egg-info
