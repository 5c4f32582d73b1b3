# The Metro STGCN Workbook. Two commands matter (see README.md):
#   make lab    open the workbook in JupyterLab (the student edition: exercises unsolved)
#   make test   run every check: ruff, unit tests, every notebook under nbval
# Both create and update the virtual environment .venv on the way.
# Also: make lab-full (the full edition, with solutions), make course (an nbgrader course),
#       make book (the workbook as a static website in build/book/html).

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

.PHONY: lab lab-full test install lint unit nbval notebooks student course book data clean help
help:
	@sed -n '1,6p' Makefile

# --- environment -------------------------------------------------------------------------------
$(BIN)/python:
	@$(PYTHON) tools/check_python.py
	@$(PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv' failed: install the venv module (Debian/Ubuntu: sudo apt install python3-venv) and run make again"; exit 1; }
	@$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalled whenever pyproject.toml changes; each stamp records the last install of its part.
# Learners get the workbook alone; the checks add the test, course and book extras.
$(VENV)/.installed: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_FLAGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (Metro STGCN)" \
	  --env OMP_WAIT_POLICY PASSIVE --env PYTHONHASHSEED 0 >/dev/null
	@touch $@

$(VENV)/.installed-course: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[course]"
	@touch $@

$(VENV)/.installed-book: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[book]"
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,course,book]"
	@touch $@

install: $(VENV)/.installed

# --- the two set-up commands -------------------------------------------------------------------
# The student edition lives in student/ (generated from notebooks/, never overwriting your changes).
# LAB_ENV adds the workbook's lab settings (tools/jupyter/labconfig: no news pop-up over the notebook);
# a user's own Jupyter configuration is left as it is.
LAB_ENV := JUPYTER_CONFIG_PATH=$(CURDIR)/tools/jupyter$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH))
lab: student
	$(LAB_ENV) $(BIN)/jupyter lab --notebook-dir=student --ip=127.0.0.1 --no-browser $(ROOT_FLAG)

lab-full: $(VENV)/.installed
	$(LAB_ENV) $(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --no-browser $(ROOT_FLAG)

test: lint unit nbval

# --- pieces of `make test` ---------------------------------------------------------------------
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

unit: $(VENV)/.installed-test
	$(BIN)/pytest tests

nbval: $(VENV)/.installed-test
	$(BIN)/pytest --nbval notebooks

# --- authoring ---------------------------------------------------------------------------------
# Re-execute every notebook in place, each from a fresh kernel, to refresh its stored outputs.
# `make notebooks NB=notebooks/01_tensors.ipynb` refreshes one.
notebooks: $(VENV)/.installed-test
	@for nb in $(or $(NB),$(NOTEBOOKS)); do echo "executing $$nb"; \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --log-level=WARN \
	    --ExecutePreprocessor.kernel_name=$(KERNEL) --ExecutePreprocessor.timeout=600 \
	    --ExecutePreprocessor.record_timing=False --ExecutePreprocessor.store_widget_state=False $$nb || exit 1; done

# Student editions: solutions replaced by stubs, outputs cleared, written to student/ (missing or
# unchanged notebooks only: a notebook you changed is kept, with a note if the workbook's moved on).
student: $(VENV)/.installed
	@$(BIN)/python -m helpers.exercises.editions notebooks student

# An nbgrader course in course/ (see README, "Teaching with this workbook"): nbgrader's own
# generate_assignment releases one assignment per notebook into course/release/.
COURSE ?= course
course: $(VENV)/.installed-course
	$(BIN)/python -m helpers.exercises.course build $(COURSE)

# The reading edition: a static website of the notebooks as stored, in build/book/html (README,
# "Reading edition"). `make book SOLUTIONS=1` keeps the exercises' solutions (for instructors).
book: $(VENV)/.installed-book
	$(BIN)/python tools/book.py $(if $(SOLUTIONS),--solutions,)

# Regenerate the shipped synthetic metro dataset byte for byte (see data/metro/README.md).
data: $(VENV)/.installed
	$(BIN)/python -m helpers.data make-metro data/metro

# Leaves student/ and course/ alone: they hold learners' and instructors' work.
clean:
	rm -rf build *.egg-info tests/shots
