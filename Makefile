# quicish: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: test demo bench bench-lossy interop sanitize fuzz explore lint typecheck clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

# (Re)install the package with what the demo needs (uvloop) and build the
# C core whenever sources change. QUICISH_REQUIRE_C=1 makes a failed C build an error here.
$(STAMP): $(PY) pyproject.toml setup.py quicish/native/build_core.py $(wildcard quicish/native/*.c quicish/native/*.h)
	QUICISH_REQUIRE_C=1 $(PY) -m pip install -q -e '.[fast]'
	$(PY) -c "import quicish, sys; from quicish.native import crypto_backend; print('quicish.ACCELERATED =', quicish.ACCELERATED, '| packet protection:', crypto_backend()); sys.exit(0 if quicish.ACCELERATED else 1)"
	touch $(STAMP)

# The test extras (pytest, hypothesis, aioquic, mypy, ruff, build) on top, for `make test`.
$(TEST_STAMP): $(STAMP)
	QUICISH_REQUIRE_C=1 $(PY) -m pip install -q -e '.[fast,test]'
	touch $(TEST_STAMP)

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check quicish tests examples benchmarks interop fuzz
	$(VENV)/bin/ruff format --check quicish tests examples benchmarks interop fuzz
	$(VENV)/bin/mypy

test: $(TEST_STAMP) lint
	$(PY) -m pytest -p no:cacheprovider tests

# Headless Chromium: fetch over HTTP/3 from `quicish serve --http3`, WebTransport echo
# through examples/webtransport_echo.py (installs Debian's
# chromium with apt-get when absent; skips, saying why, where it cannot). Part of `make test`
# too; this runs only it. See docs/http3.md.
chromium: $(TEST_STAMP)
	$(PY) -m pytest -p no:cacheprovider -v tests/test_h3_chromium.py tests/test_webtransport.py

demo: $(STAMP)
	$(PY) examples/demo.py --size-mb 100

# The bench extra (qh3) on top; picoquic's Python 3.12 venv (.venv-picoquic) is made by run_all.
$(BENCH_STAMP): $(TEST_STAMP)
	QUICISH_REQUIRE_C=1 $(PY) -m pip install -q -e '.[fast,test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run_all.py

# Goodput against random loss, fairness and queueing through the impairment relay (~20 min;
# the goodput part also runs in `make bench`, its `lossy` workload);
# PICOQUIC_PYTHON=<a Python >= 3.12 with aiopquic> adds picoquic's columns.
bench-lossy: $(TEST_STAMP)
	$(PY) benchmarks/bench_lossy.py --json benchmarks/lossy.json

interop: $(TEST_STAMP)
	$(PY) interop/run.py --all --output interop/RESULTS.md

# Build the C core with AddressSanitizer and run the differential tests under it.
sanitize: $(TEST_STAMP)
	QUICISH_SANITIZE=1 $(PY) quicish/native/build_core.py --inplace-sanitize
	LD_PRELOAD=$$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
	  QUICISH_NATIVE_MODULE=quicish.native._core_asan $(PY) -m pytest -q -p no:cacheprovider \
	  tests/test_native_*.py tests/test_conn_transfer.py tests/test_conn_streams.py

# Coverage-guided fuzzing (atheris) of every target, FUZZ_SECONDS each (default 60), one after
# the other; the C core is instrumented too when clang is installed. FUZZ_ARGS=--asan runs the
# C core built with AddressSanitizer instead. See docs/fuzzing.md.
FUZZ_SECONDS ?= 60
$(VENV)/.fuzz-installed: $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[fuzz]'
	touch $@

fuzz: $(VENV)/.fuzz-installed
	$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

# The property tests with fresh random examples (3,000 for each that sets no count of its own;
# `make test` runs a fixed, derandomized set: tests/conftest.py). A failure prints its example.
explore: $(TEST_STAMP)
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest -p no:cacheprovider -q $$(grep -l "@given" tests/test_*.py)

clean:
	rm -rf $(VENV) .venv-picoquic build *.egg-info quicish/native/_core*.so
