# Every target sets up what it needs itself, so a fresh machine needs only Python 3.10+, make and
# (for the browser and database tests) Debian's apt-get.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_DATA ?= $(abspath ../shared/data)
export MEDATTN_SHARED_DATA ?= $(SHARED_DATA)
# Some images set this, which would make every new process compile its imports again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: venv sysdeps run test lint docs bench mutate clean

# The Python packages and the Debian packages install side by side (both wait mostly on disk and network).
venv:
	@$(MAKE) --no-print-directory -j2 $(STAMP) sysdeps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@# Not byte-compiled here (pip would compile all ~15,000 files on one core): Python caches the ~5,000 it imports.
	$(BIN)/pip install --quiet --no-compile -e '.[dev]'
	touch $(STAMP)

# Headless Chromium (HTML report test) and PostgreSQL (multi-machine study test) from Debian.
sysdeps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		command -v apt-get >/dev/null || { echo "install chromium and postgresql with your package manager"; exit 1; }; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium postgresql >/dev/null; \
	fi

run: $(STAMP)
	$(BIN)/medattn study run examples/quickstart.yaml --workers 2

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

# The documentation site (docs/, mkdocs.yml) into site/; --strict fails on a broken link or anchor, and the
# run-directory reference is generated from medattn.rundir (docs/hooks/rundir_reference.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# One pytest worker per core; a test file stays on one worker (its module fixtures are built once), and files
# are handed out in collection order (tests/conftest.py puts the slow ones first).
TEST_WORKERS ?= auto
test: venv lint docs
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python bench/data_pipeline.py

# Mutation score per module (mutmut; not part of `make test`): `make mutate MODULES="stats/verdict.py"` for one,
# BEFORE=old.json to print old -> new scores (bench/mutation_score.py writes bench/results/mutation_score.json).
MODULES ?=
mutate: $(STAMP)
	nice -n 10 $(BIN)/python bench/mutation_score.py $(if $(MODULES),--modules $(MODULES)) $(if $(BEFORE),--before $(BEFORE))

clean:
	rm -rf $(VENV) runs .pytest_cache site
