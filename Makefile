# srpose: the two commands of the README.
#   make run   set up .venv (once) and run the notebook series on the built-in benchmark
#   make test  set up .venv (once) and run the test suite
#   make test-browser  the notebooks in JupyterLab, driven in headless Chromium (installs chromium)
# Both are idempotent: the environment is rebuilt only when a requirements file or
# pyproject.toml changes.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.srpose-installed
MODE   ?= quick
ONLY   ?=
RUN_ARGS ?=
PYTEST_ARGS ?=
# The notebook run through nbval in `make test` (per-cell failure reports).
NBVAL_NOTEBOOKS ?= notebooks/00_data_and_domain_gap.ipynb

# The system Chromium the browser test drives (Debian package chromium; Playwright's own
# browser download is not used).
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test test-browser setup clean-env lab bench bench-rec gpu-check

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@echo "== srpose: creating $(VENV) with $(PYTHON) (first run takes a few minutes) =="
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	@touch $(STAMP)
	@echo "== srpose: environment ready =="

run: $(STAMP)
	$(PY) -m srpose_lib.runner --mode $(MODE) $(if $(ONLY),--only $(ONLY)) $(RUN_ARGS)

test: $(STAMP)
	@SRPOSE_RUN_MODE=smoke SRPOSE_INTERACTIVE=0 TQDM_DISABLE=1 \
	  $(PY) -m pytest tests $(NBVAL_NOTEBOOKS) --nbval-lax $(PYTEST_ARGS); \
	  rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "srpose: pytest collected no tests: failing"; exit 1; fi; \
	  exit $$rc

# the last run of MODE (default quick) as a static HTML site: artifacts/docs/site/index.html
.PHONY: docs
docs: $(STAMP)
	$(PY) -m srpose_lib.docs --mode $(MODE)

# JupyterLab on a free local port, notebooks 00 and 01 run through its Run menu in headless
# Chromium (Playwright); screenshots in artifacts/browser/. Installs chromium when missing.
test-browser: $(STAMP)
	@test -x $(CHROMIUM) || { echo "== srpose: installing chromium (apt-get, about 155 MB) =="; \
	  apt-get update -q > /dev/null && apt-get install -y -q chromium > /dev/null; }
	@test -x $(CHROMIUM) || { echo "srpose: $(CHROMIUM) is still missing: install the chromium package"; exit 1; }
	@SRPOSE_CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests/browser -m browser $(PYTEST_ARGS); \
	  rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "srpose: pytest collected no browser tests: failing"; exit 1; fi; \
	  exit $$rc

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) benchmarks/bench_throughput.py

# one full-size +rec step (ResNet-101 f_kp + W + G at 256 px, 16 pairs): time and peak memory (meant for a GPU)
bench-rec: $(STAMP)
	$(PY) benchmarks/bench_reconstruction.py $(RUN_ARGS)

# the GPU check (about 8 minutes on one GPU; writes results/gpu_check-<time>/): benchmarks/gpu_check.sh
gpu-check: $(STAMP)
	PY=$(PY) benchmarks/gpu_check.sh $(RUN_ARGS)

clean-env:
	rm -rf $(VENV)
