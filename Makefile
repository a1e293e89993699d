# The README's commands. `make run` sets up and runs the whole system live; `make test`
# sets up and runs the lint, type and test suites against real Kafka and ClickHouse.

VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint typecheck unit integration bench clean

setup:
	./infra/setup.sh

run: setup
	$(BIN)/liveward run

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

unit:
	$(BIN)/pytest tests/unit

integration:
	$(BIN)/pytest tests/integration

test: setup lint typecheck
	$(BIN)/pytest

bench: setup
	$(BIN)/liveward bench backbone

clean:
	-$(BIN)/liveward stack down
	rm -rf .state
