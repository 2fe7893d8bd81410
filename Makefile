# Two commands do all set-up on a fresh machine:
#   make book   -> creates .venv, installs, executes the notebooks (default profile), builds the HTML
#   make test   -> creates .venv, installs, runs the unit tests and nbval over the committed notebooks
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv book html repository run-notebooks test unit nbval bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Execute every notebook in place (default profile), then build the HTML from the executed notebooks.
# Other profiles: make book PROFILE=paper DEVICE=cuda
PROFILE ?= default
DEVICE ?= cpu
book: $(STAMP)
	$(BIN)/python -m fbctrl.book run --profile $(PROFILE) --device $(DEVICE)
	$(MAKE) html

# --all: the introduction glues numbers, its table and its figure from the paper-protocol notebook,
# and Sphinx rewrites only the pages whose own source changed (nor copies _static/ when none did).
html: $(STAMP) repository
	$(BIN)/jupyter-book build . --all -W --keep-going

# The repository URL of the launch buttons, the Colab cells, the footer and the citation is set in
# one place, repository.url of _config.yml. With GITHUB_REPOSITORY=owner/name (set in every GitHub
# Actions run) it is set to https://github.com/owner/name first, with every copy of it; without, the
# copies are only checked against it.
repository: $(STAMP)
	$(BIN)/python -m fbctrl.book repository $(if $(GITHUB_REPOSITORY),"$(GITHUB_REPOSITORY)",--check)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests
	$(MAKE) nbval

# Re-execute every committed notebook and compare its outputs with the stored ones (images are
# not compared; glued numbers and tables are). Progress bars are switched off in the kernels.
nbval: $(STAMP)
	@if ls book/*.ipynb >/dev/null 2>&1; then \
	  TQDM_DISABLE=1 $(BIN)/python -m pytest -q -p no:cacheprovider --nbval book/*.ipynb \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg; \
	else echo "no notebooks yet"; fi

bench: $(STAMP)
	$(BIN)/python -m fbctrl bench pretrain
	$(BIN)/python -m fbctrl bench adapt

clean:
	rm -rf _build
