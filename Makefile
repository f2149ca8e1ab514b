# Two commands for a fresh machine: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench bench-ansible lint format clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "migcheck needs Python >= 3.10 (found $$($(PYTHON) --version))"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Shows a verdict; UNSAFE is the expected answer for these fixtures, so exit 1 is success here.
demo: $(STAMP)
	@$(BIN)/migcheck pair fixtures/hosts/debian13-qemu10.0-epyc-pvm.json \
		fixtures/hosts/debian12-qemu7.2-epyc-pvm.json \
		--cmdline fixtures/cmdlines/web01-q35.cmdline; \
	rc=$$?; [ $$rc -le 1 ] || exit $$rc

test: $(STAMP)
	$(BIN)/ruff check migcheck tests bench
	$(BIN)/ruff format --check migcheck tests bench
	$(BIN)/python -m pytest -q

# Property-based fuzzing of every parser at 10,000 examples each (make test runs 100).
fuzz: $(STAMP)
	MIGCHECK_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest tests/test_fuzz.py -q -p no:cacheprovider

# Benchmarks (root: the SSH lab needs mount namespaces). Results: BENCHMARKS.md.
# BEFORE=DIR (a checkout of older code with its own .venv) adds paired "before" runs.
bench: $(STAMP)
	$(BIN)/python bench/fleet_bench.py
	$(BIN)/python bench/fleet_scale_bench.py $(if $(BEFORE),--before $(BEFORE))
	$(BIN)/python bench/ssh_bench.py
	$(BIN)/python bench/startup_bench.py $(if $(BEFORE),--before $(BEFORE))

# Gathering through Ansible against migcheck gather on 500 lab hosts (root; about 35 minutes
# on 2 cores, so not part of `make bench`). Uses /var/tmp/migcheck-ansible (.ci/run's venv).
bench-ansible: $(STAMP)
	$(BIN)/python bench/ansible_gather_bench.py

lint: $(STAMP)
	$(BIN)/ruff check migcheck tests bench

format: $(STAMP)
	$(BIN)/ruff format migcheck tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
