# Nimbus PACS. `make run` and `make test` work on a fresh Debian machine with
# only Python 3.11: everything else is installed on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(BIN)/python deploy/dev/services.py --

.PHONY: run test install system-deps bench lint format

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { deploy/dev/apt-install.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed

# dcmtk is the independent DICOM peer in tests; Chromium drives the browser tests;
# gettext lets the translation test compare the catalogues with the code.
system-deps:
	@deploy/dev/apt-install.sh dcmtk:storescu chromium:chromium gettext:xgettext fonts-dejavu-core flite espeak-ng:espeak-ng libpango-1.0-0 libpangoft2-1.0-0

run: install
	@deploy/dev/apt-install.sh fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0
	$(SERVICES) $(BIN)/python deploy/dev/run.py

test: install system-deps
	$(SERVICES) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install system-deps
	@deploy/dev/apt-install.sh orthanc:Orthanc orthanc-dicomweb
	$(SERVICES) $(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
