# Two commands set everything up:  make demo  |  make test
# Both create .venv when needed and install the project with every extra; the constraints file pins
# the CPU build of PyTorch for this set-up (the package itself does not pin it).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cloudtrain-installed
PYTEST_ARGS ?=

.PHONY: demo test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cloudtrain validate examples/digits-sklearn.yaml
	$(VENV)/bin/cloudtrain run examples/digits-sklearn.yaml
	$(VENV)/bin/cloudtrain estimate examples/digits-sklearn.yaml
	$(PY) examples/sagemaker_emulator_demo.py

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	for script in bench/bench_*.py bench/catalog_coverage.py; do echo "== $$script"; $(PY) $$script || exit 1; done
	@echo "(bench/gpu_transformer.py needs a CUDA device: run it where one exists)"

clean:
	rm -rf $(VENV) .cloudtrain .pytest_cache build *.egg-info
