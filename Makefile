# One command to set up a fresh machine and run Hangar on its embedded default
# (managed local PostgreSQL, local CA, one HTTPS port): make run
# One command to run every test: make test
GO ?= go

.PHONY: run build test bench setup

setup:
	./scripts/setup.sh

build:
	$(GO) build -o bin/ ./cmd/hangar ./cmd/dbos-cloud

run: setup build
	./bin/hangar serve $(ARGS)

test: setup
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

bench: setup build
	./bench/deploy/run.sh
