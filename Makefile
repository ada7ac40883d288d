# make demo: set up and run the demo lab.  make test: set up and run every test.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: demo test test-deps lint bench bench-replicate docs clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m demo.run

# Servers and tools the integration tests start (PostgreSQL, btrfs on loop devices...).
test-deps:
	@scripts/install-test-deps

lint: $(STAMP)
	$(VENV)/bin/ruff check --quiet vzbackup tests demo bench scripts
	$(VENV)/bin/lint-imports --config pyproject.toml

test: $(STAMP) test-deps lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.backup_bench

# Replication to SFTP and S3 on loopback against plain paramiko and boto3 uploads (root: sshd).
bench-replicate: $(STAMP)
	$(PY) -m bench.replicate_bench

docs: $(STAMP)
	$(PY) -m scripts.gen_exit_codes > docs/reference/exit-codes.md
	$(PY) -m scripts.gen_cli_reference > docs/reference/cli.md

clean:
	rm -rf $(VENV) .demo-lab .pytest_cache
