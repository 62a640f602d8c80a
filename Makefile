# Two commands do everything, set-up included (see README.md):
#   make study   run the study (PROFILE=smoke|cpu|paper), then the report
#   make test    run the tests
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu

.PHONY: setup test study bench fixtures julia-check

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

study: setup
	$(VENV)/bin/replication run --profile $(PROFILE)

# Generation speed of every backend, model, mode and batch (batch 1: whole images; 64: a 64-step
# prefix), beside the roofline floor measured in the same run; one JSON per run in results/bench/,
# then one table of them all (minutes; not a test). BENCH_BACKENDS="torch jax julia" adds Julia.
BENCH_BACKENDS ?= torch jax
bench: setup
	rm -rf results/bench && mkdir -p results/bench
	for backend in $(BENCH_BACKENDS); do \
	  for model in mnist cifar; do \
	    for mode in linear-recurrent softmax-cached softmax-uncached; do \
	      for batch in 1 64; do \
	        $(VENV)/bin/replication speed --backend $$backend --model $$model --mode $$mode --batch $$batch --json \
	          $$( [ $$batch -gt 1 ] && echo --steps 64 ) > results/bench/$$backend-$$model-$$mode-$$batch.json || exit 1; \
	      done; done; done; done
	$(PY) -c "import glob, json; from replication.speed import table; \
	  print(table([json.load(open(f)) for f in sorted(glob.glob('results/bench/*.json'))]))"

# For a user with Julia: Pkg.test(), the Python-Julia parity tests, then a Julia vs PyTorch vs JAX
# speed table (three modes, batch 1 and the best batch). Without Julia: one line on how to get it.
julia-check: setup
	$(PY) -m replication.julia_check

fixtures: setup
	$(PY) fixtures/make_fixtures.py
