# The book's two entry points, each with its own set-up (venv, pinned torch, data):
#   make book   executes every chapter with papermill and renders the HTML into _build/html
#   make test   runs the whole test suite (unit tests, each chapter executed once at its defaults
#               with its checked cells compared, strict book build, headless-browser checks)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHAPTERS := $(sort $(wildcard chapters/[0-9][0-9]_*.ipynb))
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: setup data browser book execute guide html test quick-test benchmark clean

setup: $(VENV)/.installed data

# torch and torchvision are pinned and installed first: a bare `torch` could pull a newer,
# multi-GB build, and the companion's own lower bounds are then already met.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[book,test,scale]"
	touch $@

# Fashion-MNIST comes from Debian's package on machines without internet.
data: $(FASHION_MNIST)
$(FASHION_MNIST):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -q && $$SUDO apt-get install -y -q dataset-fashion-mnist \
	|| echo "WARNING: could not install dataset-fashion-mnist; Fashion-MNIST sections need it offline"

book: execute guide html

execute: setup
	$(PY) -m companion.execute $(CHAPTERS)

# The detector page is regenerated from the committed benchmark CSV and the chapters' results.
guide: setup
	$(PY) -m companion.guide

html: setup
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going

# Debian's headless Chromium and its driver, for the test that opens every built page.
browser: $(CHROMEDRIVER)
$(CHROMEDRIVER):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver \
	|| echo "WARNING: could not install chromium; the browser test will fail without it"

test: setup browser
	$(VENV)/bin/python -m pytest

quick-test: setup
	$(VENV)/bin/python -m pytest -m "not slow"

# The committed one-class benchmark (chapter 10): 10 classes x 3 seeds of every model on both
# datasets, full training splits (benchmarks/README.md has the measured hours). Resumable: an
# interrupted run loses only the run in progress, and a second call skips what is done. Add
# `--executor ray` to spread the runs over this machine's cores (chapter 10).
BENCHMARK := $(PY) -m companion.benchmark --out benchmarks/results/one_class.csv --seeds 0 1 2 \
	--datasets mnist fashion-mnist --no-progress
benchmark: setup
	$(BENCHMARK) --models dense_ae conv_ae restoration_ae vae restoration_plus restoration_pair
	$(BENCHMARK) --models alocc alocc_fixed ano_unet fnet_distance fnet_oe

clean:
	rm -rf _build chapters/data chapters/results chapters/checkpoints
