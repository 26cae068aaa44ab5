# envctl: `make demo` runs the main job, `make test` runs the tests. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEAM ?= fraud

.PHONY: install demo test test-fast test-prereqs test-aws lint bench schema clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# With a reachable Docker engine the demo also boots the Airflow host as a local container
# that runs the real userdata (sandbox hosts); without one, the sandbox alone.
HOSTS_FLAG = $(shell docker info >/dev/null 2>&1 && echo --hosts)

demo: install
	$(BIN)/envctl create $(TEAM) $(HOSTS_FLAG)
	$(BIN)/envctl outputs $(TEAM)
	@$(BIN)/envctl next-steps $(TEAM)

# tests/real_aws runs only by `make test-aws` (it needs a Pulumi CLI and AWS credentials).
PYTEST = $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --ignore=tests/real_aws -rs

# The whole suite. scripts/test-prereqs.sh runs first, before the venv: as root (or with sudo
# without a password) on Debian/Ubuntu it installs docker.io, debootstrap and docker-registry and
# starts dockerd; elsewhere without a Docker engine it stops at once, saying what is missing.
test: test-prereqs
	@$(MAKE) --no-print-directory install
	@$(MAKE) --no-print-directory lint
	$(PYTEST)

test-prereqs:
	@bash scripts/test-prereqs.sh

# The architecture (import-linter contracts in pyproject.toml) and ruff's lint.
lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check provisioner tests

# Every test that needs no Docker engine.
test-fast: install
	$(PYTEST) -m "not docker and not hosts"

# Opt-in end to end against a real AWS account (Pulumi CLI and credentials needed): tests/real_aws.
test-aws: install
	$(BIN)/python -m pytest -p no:xdist -m real_aws tests/real_aws -rs

# Benchmarks (bench/run.py): results in bench/results/latest.json and docs/performance.md; about ten minutes.
bench: install
	$(BIN)/python bench/run.py

# A fresh run compared with the committed results: fails when a figure got more than 2x worse.
.PHONY: bench-check
bench-check: install
	$(BIN)/python bench/run.py --out bench/results/current.json --no-doc
	$(BIN)/python bench/check.py bench/results/current.json

schema: install
	$(BIN)/envctl schema --out docs/envctl-v1.schema.json

clean:
	rm -rf $(VENV) .envctl .pytest_cache
