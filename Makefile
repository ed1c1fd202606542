# The menu: make demo, make test, make lint, make bench, make soak.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench soak clean install

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/tally demo

# -rfEs names every failure, error and skip (with its reason); --durations lists the slowest
# tests. Under CI (env CI set) a skip not listed in ALLOWED_SKIPS (tests/conftest.py) fails.
# Two workers (pytest-xdist): most end-to-end tests wait on real processes, so two share
# 2 cores well; each file stays on one worker (its module fixtures start once, its tests keep
# their order). `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
test: venv
	$(BIN)/pytest -q -p no:cacheprovider -rfEs --durations=15 -n $(TEST_WORKERS) --dist loadfile
	$(MAKE) lint

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: venv
	$(BIN)/python -m bench

# `make soak`: a compressed year of a busy plant under faults (about 100 minutes and six million
# events on 2 cores), then the checks (docs/performance.md); exit 1 when one fails. A shorter
# run: `make soak SOAK_ARGS="--terminals 3 --seconds 300"`.
SOAK_ARGS ?= --year
soak: venv
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache

# `make install [DESTDIR=stage] [PREFIX=/opt/tally]`: a virtual environment with Tally under
# PREFIX (linked as BINDIR/tally), the units, sysusers/tmpfiles, and the sample config (never over an edited one: a
# differing tally.toml gets tally.toml.new beside it). Without DESTDIR it also creates the
# tally user and folders and reloads systemd. An upgrade is the same command (the database
# migrates itself when the daemon opens it).
PREFIX ?= /opt/tally
SYSCONFDIR ?= /etc
BINDIR ?= /usr/local/bin
UNITDIR ?= /etc/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
PIP_INSTALL_FLAGS ?=
INSTALL_VENV := $(DESTDIR)$(PREFIX)
CONF := $(DESTDIR)$(SYSCONFDIR)/tally/tally.toml

install:
	$(PY) -m venv $(INSTALL_VENV)
	$(INSTALL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_INSTALL_FLAGS) --upgrade .
	@# A staged venv must run from PREFIX once copied there: rewrite the scripts' paths.
	@if [ -n "$(DESTDIR)" ]; then \
	  grep -lIr --null -F '$(INSTALL_VENV)' $(INSTALL_VENV)/bin $(INSTALL_VENV)/pyvenv.cfg \
	    | xargs -0 -r sed -i 's#$(INSTALL_VENV)#$(PREFIX)#g'; \
	fi
	@# The daemon runs optimised (tally.service: PYTHONOPTIMIZE=2, PYTHONPYCACHEPREFIX): its byte
	@# code, and the standard library's, compiled the way it looks for it.
	$(INSTALL_VENV)/bin/python -m agent.daemon.bytecode --prefix $(PREFIX) $(if $(DESTDIR),--stage $(DESTDIR))
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/tally $(INSTALL_VENV)/share/doc/tally $(DESTDIR)$(BINDIR)
	ln -sfn $(PREFIX)/bin/tally $(DESTDIR)$(BINDIR)/tally
	for unit in tally.service tally-tui@.service; do \
	  sed 's#/opt/tally#$(PREFIX)#g; s#/etc/tally#$(SYSCONFDIR)/tally#g' systemd/$$unit \
	    > $(DESTDIR)$(UNITDIR)/$$unit && chmod 0644 $(DESTDIR)$(UNITDIR)/$$unit; \
	done
	install -m 0644 systemd/tally.sysusers $(DESTDIR)$(SYSUSERSDIR)/tally.conf
	install -m 0644 systemd/tally.tmpfiles $(DESTDIR)$(TMPFILESDIR)/tally.conf
	install -m 0644 README.md CHANGELOG.md $(INSTALL_VENV)/share/doc/tally/
	@if [ ! -e $(CONF) ]; then \
	  install -m 0640 systemd/tally.toml $(CONF); echo "installed $(CONF)"; \
	elif cmp -s systemd/tally.toml $(CONF); then \
	  echo "$(CONF) is unchanged"; \
	else \
	  install -m 0640 systemd/tally.toml $(CONF).new; \
	  echo "kept your $(CONF); the new sample is $(CONF).new"; \
	fi
	@if [ -z "$(DESTDIR)" ]; then \
	  systemd-sysusers $(SYSUSERSDIR)/tally.conf && \
	  systemd-tmpfiles --create $(TMPFILESDIR)/tally.conf && \
	  chgrp tally $(CONF)* && \
	  if [ -d /run/systemd/system ]; then \
	    systemctl daemon-reload && systemctl try-restart tally.service; \
	  fi; \
	fi
