# geodispatch: the two commands are `make demo` and `make test`; both bring everything up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: services demo test bench lint clean-var

services:  ## install packages, venv, start PostgreSQL/PostGIS + Mosquitto, migrate
	@bash scripts/services.sh

demo: services  ## the whole system on a real city with a simulated fleet
	$(VENV)/bin/geodispatch demo $(DEMO_ARGS)

test: services  ## the whole test suite against the real services
	$(PY) -m pytest $(PYTEST_ARGS)

bench: services  ## every benchmark; each prints a table and a final JSON line
	@$(VENV)/bin/pip install -q -e '.[dev,bench]' || echo "bench extras (pandana) did not install; its column will be empty"
	@set -e; for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b; done

lint:
	$(VENV)/bin/ruff check geodispatch tests bench
	$(VENV)/bin/mypy

clean-var:  ## forget generated state (broker files, graphs, anchors); the databases stay
	rm -rf var
