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

# Generation speed of every mode at the paper's sizes, batch 1 and 64 (minutes; not a test).
bench: setup
	mkdir -p results/bench
	for model in mnist cifar; do \
	  for mode in linear-recurrent softmax-cached softmax-uncached; do \
	    for batch in 1 64; do \
	      $(VENV)/bin/replication speed --model $$model --mode $$mode --batch $$batch --json \
	        $$( [ $$batch -gt 1 ] && echo --steps 64 ) > results/bench/$$model-$$mode-$$batch.json || exit 1; \
	      $(PY) -c "import json,sys; from replication.speed import summary_line; print(summary_line(json.load(open(sys.argv[1]))))" results/bench/$$model-$$mode-$$batch.json; \
	    done; done; done

# For a user with Julia: Pkg.test(), the Python-Julia parity tests, then a Julia vs PyTorch vs JAX
# speed table (three modes, batch 1 and the best batch). Without Julia: one line on how to get it.
julia-check: setup
	$(PY) -m replication.julia_check

fixtures: setup
	$(PY) fixtures/make_fixtures.py
