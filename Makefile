# The Metro STGCN Workbook. Two commands matter (see README.md):
#   make lab    open the workbook in JupyterLab
#   make test   run every check: ruff, unit tests, every notebook under nbval
# Both create and update the virtual environment .venv on the way.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
KERNEL := metro-stgcn
# torch is installed before the workbook so that the CPU build is used where one is at hand.
# GPU users: see README.md ("Using a GPU").
TORCH_SPEC  ?= torch==2.13.0
TORCH_FLAGS ?=
ROOT_FLAG   := $(if $(filter 0,$(shell id -u)),--allow-root,)
NOTEBOOKS   := $(sort $(wildcard notebooks/*.ipynb))

export PYTHONHASHSEED := 0
# OpenMP threads sleep instead of spinning while they wait: on a small CPU shared with a browser or other
# processes, spinning made training loops several times slower (results are identical either way).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: lab test install lint unit nbval notebooks student data clean help
help:
	@sed -n '1,4p' Makefile

# --- environment -------------------------------------------------------------------------------
$(BIN)/python:
	@$(PYTHON) tools/check_python.py
	@$(PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv' failed: install the venv module (Debian/Ubuntu: sudo apt install python3-venv) and run make again"; exit 1; }
	@$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalled whenever pyproject.toml changes; the stamp records the last install.
$(VENV)/.installed: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_FLAGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (Metro STGCN)" \
	  --env OMP_WAIT_POLICY PASSIVE --env PYTHONHASHSEED 0 >/dev/null
	@touch $@

install: $(VENV)/.installed

# --- the two set-up commands -------------------------------------------------------------------
lab: $(VENV)/.installed
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --no-browser $(ROOT_FLAG)

test: lint unit nbval

# --- pieces of `make test` ---------------------------------------------------------------------
lint: $(VENV)/.installed
	$(BIN)/ruff check .

unit: $(VENV)/.installed
	$(BIN)/pytest tests

nbval: $(VENV)/.installed
	$(BIN)/pytest --nbval notebooks

# --- authoring ---------------------------------------------------------------------------------
# Re-execute every notebook in place, each from a fresh kernel, to refresh its stored outputs.
# `make notebooks NB=notebooks/01_tensors.ipynb` refreshes one.
notebooks: $(VENV)/.installed
	@for nb in $(or $(NB),$(NOTEBOOKS)); do echo "executing $$nb"; \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --log-level=WARN \
	    --ExecutePreprocessor.kernel_name=$(KERNEL) --ExecutePreprocessor.timeout=600 \
	    --ExecutePreprocessor.record_timing=False $$nb || exit 1; done

# Student editions: solutions replaced by stubs, outputs cleared, written to student/.
student: $(VENV)/.installed
	$(BIN)/python -m helpers.exercises.editions notebooks student

# Regenerate the shipped synthetic metro dataset byte for byte (see data/metro/README.md).
data: $(VENV)/.installed
	$(BIN)/python -m helpers.data make-metro data/metro

clean:
	rm -rf student build *.egg-info tests/shots
