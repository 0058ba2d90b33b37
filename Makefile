# One command to set up a fresh machine and run Hangar on its embedded default
# (managed local PostgreSQL, local CA, one HTTPS port): make run
# One command to run every test: make test
GO ?= go

.PHONY: run build test bench setup setup-test k8s-test

setup:
	./scripts/setup.sh

setup-test:
	./scripts/setup.sh --test

# With a one-line change to Go's scheduler: docs/runtime-patch.md.
build:
	GO=$(GO) ./scripts/gobuild.sh bin ./cmd/hangar ./cmd/dbos-cloud

run: setup build
	./bin/hangar serve $(ARGS)

# Unit packages run under the race detector; the end-to-end suite and the
# drivers' root-only network tests run without it (real binaries, real
# namespaces: the detector would only slow them down).
NORACE := /e2e$$|/runtime/sandbox$$|/runtime/netns$$|/runtime/internal/vnet$$

test: setup-test
	$(GO) vet ./...
	$(GO) test -count=1 -race -timeout 25m $$($(GO) list ./... | grep -Ev '$(NORACE)')
	$(GO) test -count=1 -timeout 45m $$($(GO) list ./... | grep -E '$(NORACE)')

# The kubernetes driver's tests on a real one-node cluster, built from the Go
# module proxy once and cached in /var/cache/hangar-k8s (scripts/k8s-test.sh).
# Not part of make test: a cold build takes 8-15 minutes.
k8s-test:
	./scripts/k8s-test.sh

bench: setup build
	./bench/deploy/run.sh
