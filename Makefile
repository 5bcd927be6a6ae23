# Two commands on a fresh machine: `make demo` and `make test`. Everything else is what they build on.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3.11
VENV ?= .venv
# Downloads are cached outside the clone (the CUDA torch wheels are ~3 GB), so CI re-runs install offline-fast.
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ophys-extraction
WHEELHOUSE ?= $(CACHE_DIR)/wheels
PY := $(VENV)/bin/python
NEXTFLOW := $(VENV)/bin/nextflow
DEMO_DATA ?= demo_data
OUTDIR ?= results
PYTEST_ARGS ?=

.PHONY: install demo demo-data docs-examples test slurm-test containers container-test bench clean

install: $(VENV)/.installed

# The pipeline's environment (requirements.lock, what the container images install) and suite2p's GUI, which only the
# tests use (requirements-gui.lock).
LOCKS := -r requirements.lock -r requirements-gui.lock

$(VENV)/.installed: requirements.lock requirements-gui.lock pyproject.toml tools/install_nextflow.sh tools/nextflow/pom.xml tools/nextflow/VERSION
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"need Python 3.11, got {sys.version}"'
	$(PYTHON) -m venv $(VENV)
	mkdir -p $(WHEELHOUSE)
	# Fetch only what the wheelhouse lacks, then install strictly from it with --no-deps (see README).
	$(VENV)/bin/pip install --quiet --no-deps --no-index --find-links $(WHEELHOUSE) $(LOCKS) 2>/dev/null \
	  || { $(VENV)/bin/pip download --quiet --no-deps $(LOCKS) -d $(WHEELHOUSE) \
	       && $(VENV)/bin/pip install --quiet --no-deps --no-index --find-links $(WHEELHOUSE) $(LOCKS); }
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation --no-index -e .
	# Compile the numba kernels into their on-disk cache once, so that no pipeline task compiles (README).
	$(VENV)/bin/ophys-extraction warm-up
	tools/install_nextflow.sh $(VENV)
	touch $@

# The bundled demo: two synthetic planes in Allen's session layout, generated deterministically.
demo-data: $(DEMO_DATA)/.complete

$(DEMO_DATA)/.complete: $(VENV)/.installed $(wildcard src/ophys_extraction/synthetic/*.py)
	rm -rf $(DEMO_DATA)
	$(PY) -m ophys_extraction.synthetic --out $(DEMO_DATA) --n_planes 2 --seed 20261124
	touch $@

demo: install demo-data
	$(NEXTFLOW) run main.nf -profile test --input_dir $(DEMO_DATA) --outdir $(OUTDIR) --nwb

# The example overview and QC figures under docs/examples/, from the demo's results.
docs-examples: demo
	$(PY) tools/docs_examples.py --results $(OUTDIR) --out docs/examples

test: install demo-data
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) container-test

# Both images, with podman (or docker where a daemon runs); only what changed is rebuilt (README, "Containers").
containers:
	containers/build.sh

# Build the images, run the demo in them and in the project's environment, and compare every plane's extraction.h5
# dataset by dataset (tools/container_test.sh).
container-test: install demo-data
	tools/container_test.sh

# The demo through SLURM's sbatch on a single-node cluster started on this machine (tools/slurm/start_cluster.sh:
# needs root; installs slurm-wlm and munge with apt-get if missing). `make test` runs the same tests and skips them
# where no cluster can be started; here that is a failure. Then prints the last 11 jobs as SLURM logged them
# (`sacct -c` reads the job-completion log): the demo's 9 and the 2 of the GPU-request check.
SACCT := SLURM_CONF=$${OPHYS_SLURM_DIR:-/tmp/ophys-extraction-slurm}/slurm.conf sacct -c \
	--format=JobID,JobName%32,State,ExitCode,Start,End,NodeList
slurm-test: install demo-data
	OPHYS_REQUIRE_SLURM=1 $(PY) -m pytest tests/test_slurm.py $(PYTEST_ARGS)
	$(SACCT) | sed -n 1,2p && $(SACCT) | tail -n +3 | tail -n 11

bench: install
	$(PY) bench/extraction.py
	$(PY) bench/neuropil.py
	$(PY) bench/detection.py

clean:
	rm -rf $(OUTDIR) work .nextflow* $(DEMO_DATA)
