# make book  - install into .venv and build the HTML book, running every chapter at paper scale
#              (two chapters at a time, then the reproduction report; tools/book.py)
# make pdf   - the whole book as one PDF (_build/closedloop.pdf), after make book
# make test  - install into .venv and run the unit tests, every chapter at small scale, and the
#              book built from those in headless Chromium, offline (make browser)
# make bench - time the fast paths against plain loops (writes _build/bench/)
# make clean - remove the build outputs

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CI_NB  := _build/ci
VENDOR := _vendor/versions.json

.PHONY: book pdf test lint unit notebooks browser bench clean

# pyvenv.cfg (a real file; bin/python is a symlink whose target mtime make would read) is a
# prerequisite so that a half-deleted .venv (stamp left, python gone)
# is rebuilt rather than trusted
$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/pyvenv.cfg requirements.txt constraints.txt pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# MathJax, require.js and the ipywidgets HTML manager, from the npm registry (pinned, checked),
# so that the book works offline; Python's standard library only
$(VENDOR): tools/fetch_assets.py
	$(PYTHON) tools/fetch_assets.py _vendor

# papermill runs every chapter (a failing cell stops the build), the report reads their glue,
# then jupyter-book builds the HTML from the executed notebooks with --all -W -n --keep-going:
# any warning (a broken reference, a missing glue) fails the build after reporting all of them
book: $(STAMP) $(VENDOR)
	$(BIN)/python tools/book.py
	@echo "The book is in _build/html/index.html"

# headless Chromium prints every page of the built book (offline), pypdf merges them
pdf: $(STAMP)
	@test -f _build/html/index.html || { echo "run make book first"; exit 1; }
	$(BIN)/python tools/pdf.py

test: lint unit notebooks browser

lint: $(STAMP)
	$(BIN)/ruff check closedloop tests benchmarks tools

# the tests run in two processes at a time (pytest-xdist), each on one thread: two processes
# with default threads on two cores oversubscribe OpenMP. Every path that picks its own threads
# is also run at two threads inside a test (tests/test_threads.py)
PAR := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
JOBS ?= 2

unit: $(STAMP)
	$(PAR) $(BIN)/python -m pytest -q -n $(JOBS) tests

# every chapter through papermill at the small parameters of tests/notebook_params.json,
# then nbval re-executes those outputs and compares the cells marked NBVAL_CHECK_OUTPUT
# (the chapters two at a time, then the report, which reads their glue; nbval keeps each
# notebook's cells in one process, in order: --dist loadfile)
notebooks: $(STAMP)
	$(PAR) $(BIN)/python -m pytest -q -n $(JOBS) tests/notebook_runs.py -k "not report"
	$(PAR) $(BIN)/python -m pytest -q tests/notebook_runs.py -k report
	$(PAR) $(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile --nbval-lax \
		--nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider \
		$(CI_NB)/*.ipynb

# the book built from the notebooks of `make notebooks` (no re-execution), opened in headless
# Chromium from _build/browser/ without network; screenshots in _build/browser/screenshots/.
# Skipped, with the reason, where chromium or chromedriver is missing
browser: $(STAMP) $(VENDOR) notebooks
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider tests/browser.py

# speed against plain per-step loops; writes _build/bench/results.md and scaling.png
bench: $(STAMP)
	$(BIN)/python -m benchmarks --chapters

clean:
	rm -rf _build
