# The two commands of the README rest on `make install`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PLUGINS := plugins/clean plugins/ner plugins/dedup plugins/alerts plugins/feeds plugins/stories
# The example third-party plugin: installed the way an author installs theirs.
EXAMPLE_PLUGINS := examples/stream-quotes
# A plugin of the fault tests (loaded only when STREAM_PLUGINS names it).
TEST_PLUGINS := tests/plugins/stream-slow
# The benchmark: a plugin that adds `stream bench` (outside the core: it measures the plugins).
BENCH := bench

.PHONY: dist install broker browser demo test unit integration lint typecheck check clean-broker bench campaign \
	fault-loop

# The dashboard test drives Debian's Chromium (headless) through chromedriver.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(addsuffix /pyproject.toml,$(PLUGINS) $(EXAMPLE_PLUGINS) $(TEST_PLUGINS) $(BENCH))
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "stream needs Python 3.11 or later")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# The core was called "stream" before it became "stream-news": an old editable install of it
	@# would register the same entry points twice.
	@$(BIN)/pip uninstall --quiet --yes stream 2>/dev/null || true
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]' $(addprefix -e ,$(PLUGINS) $(EXAMPLE_PLUGINS) $(TEST_PLUGINS) $(BENCH))
	$(BIN)/stream broker fetch
	@touch $@

broker: install
	$(BIN)/stream broker start

# Wheels of the core (stream-news) and the built-in plugins, for installing elsewhere.
DIST ?= dist
dist: install
	rm -f $(DIST)/*.whl
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir $(DIST) . $(PLUGINS)
	@ls -1 $(DIST)/*.whl

browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
	  echo "installing Debian's chromium and chromium-driver (for the dashboard test)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; fi

demo: broker
	$(BIN)/stream demo examples/articles examples/malformed.jsonl

# pytest exits 5 when it collected no test: that is a failure, not a pass.
test: broker browser lint typecheck
	@$(BIN)/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

unit: install
	$(BIN)/pytest -m "not integration"

integration: broker browser
	$(BIN)/pytest -m integration

lint: install
	$(BIN)/ruff check src plugins tests examples bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

# Not part of `make test`: figures, not pass/fail.
bench: broker
	$(BIN)/stream bench

# The long randomized fault campaign (make test runs a few rounds of it).
# `make campaign CAMPAIGN_GUARANTEE=exactly_once` runs it under exactly-once.
CAMPAIGN_ROUNDS ?= 30
CAMPAIGN_GUARANTEE ?= at_least_once
campaign: broker
	STREAM_CAMPAIGN_ROUNDS=$(CAMPAIGN_ROUNDS) STREAM_CAMPAIGN_LONG_FREEZE=1 \
	  STREAM_CAMPAIGN_GUARANTEE=$(CAMPAIGN_GUARANTEE) $(BIN)/pytest -s tests/integration/test_campaign.py

# The stall hunt of issue 26: the 1 -> 3 -> 1 scale test with webhooks and digests, and the
# exactly-once crash test, FAULT_LOOPS times each (not in `make test`: about 4 minutes a loop).
FAULT_LOOPS ?= 10
fault-loop: broker
	@for n in $$(seq $(FAULT_LOOPS)); do echo "== loop $$n of $(FAULT_LOOPS)"; \
	  $(BIN)/pytest -q -s -p no:cacheprovider tests/integration/test_webhook_scale.py::test_workers_with_webhooks_scaled_1_3_1_stay_up_and_deliver_every_alert \
	    "tests/integration/test_crash.py::test_exactly_once_sigkill_every_article_once" || exit 1; done

clean-broker: install
	$(BIN)/stream broker stop
