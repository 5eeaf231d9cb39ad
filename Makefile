# Two commands set everything up:  make demo  |  make test
# Both create .venv when needed and install the project with every extra; the constraints file pins
# the CPU build of PyTorch for this set-up (the package itself does not pin it).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cloudtrain-installed
PYTEST_ARGS ?=
# checkov's own venv (see lint-infra below)
INFRA_VENV ?= .venv-infra
CHECKOV := $(INFRA_VENV)/bin/checkov
CHECKOV_VERSION ?= 3.3.30
# the SageMaker Python SDK v2's own venv (see sagemaker-v2 below)
SM2_VENV ?= .venv-sm2
SAGEMAKER_V2_VERSION ?= 2.257.7
SM2_STAMP := $(SM2_VENV)/.sagemaker-$(SAGEMAKER_V2_VERSION)

.PHONY: demo test install bench clean sagemaker-v2

$(PY):
	@echo "== creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "== upgrading pip in $(VENV) (the pip a venv starts with, 23.x on Python 3.11, fails to resolve the extras)"
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip>=25'

$(STAMP): $(PY) pyproject.toml constraints.txt
	@echo "== installing cloudtrain with every extra into $(VENV): the cloud SDKs (boto3, sagemaker, azure-ai-ml,"
	@echo "   google-cloud-aiplatform), PyTorch (CPU build, pinned in constraints.txt), scikit-learn, Optuna, moto and"
	@echo "   the test tools; a few minutes the first time, nothing when it is up to date"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)
	@echo "== installed"

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cloudtrain validate examples/digits-sklearn.yaml
	$(VENV)/bin/cloudtrain run examples/digits-sklearn.yaml
	$(VENV)/bin/cloudtrain estimate examples/digits-sklearn.yaml
	$(PY) examples/sagemaker_emulator_demo.py

test: $(STAMP) $(CHECKOV) $(SM2_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	for script in bench/bench_*.py bench/catalog_coverage.py; do echo "== $$script"; $(PY) $$script || exit 1; done
	@echo "(bench/gpu_transformer.py needs a CUDA device: run it where one exists)"

# checkov (infra/ checks, run by tests/infra) pins boto3, networkx and packaging below the project's
# pins, so it lives in a venv of its own (INFRA_VENV, above); without a registry the install fails,
# and the checkov test then skips saying so (cfn-lint and python-hcl2 come with the `lint-infra` extra).
$(CHECKOV):
	@echo "== installing checkov $(CHECKOV_VERSION) into $(INFRA_VENV) (its own environment: its pins conflict with the project's)"
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION) \
		|| { echo "checkov could not be installed: tests/infra/test_checkov.py will skip"; rm -rf $(INFRA_VENV); }

# The SageMaker Python SDK v2 (the Estimator API most pipelines still use) cannot share .venv with v3:
# tests/emulators/user_code/ runs a v2 Estimator script with $(SM2_VENV)/bin/python against the
# emulator; without a registry the install fails, and that test then skips saying so.
$(SM2_STAMP):
	@echo "== installing the SageMaker Python SDK v2 (sagemaker==$(SAGEMAKER_V2_VERSION), with its own boto3) into $(SM2_VENV)"
	@rm -rf $(SM2_VENV) && $(PYTHON) -m venv $(SM2_VENV)
	@$(SM2_VENV)/bin/pip install --quiet --disable-pip-version-check sagemaker==$(SAGEMAKER_V2_VERSION) && touch $(SM2_STAMP) \
		|| { echo "sagemaker $(SAGEMAKER_V2_VERSION) could not be installed: the SDK v2 test will skip"; rm -rf $(SM2_VENV); }

sagemaker-v2: $(SM2_STAMP)

.PHONY: lint-infra
lint-infra: $(STAMP) $(CHECKOV)
	$(VENV)/bin/cfn-lint infra/aws/*.yaml
	$(CHECKOV) --config-file infra/.checkov.yaml --quiet

clean:
	rm -rf $(VENV) $(SM2_VENV) .cloudtrain .pytest_cache build *.egg-info
