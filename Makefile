# Tollgate developer tasks. `make help` lists them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Go is found on PATH, else in /usr/local/go/bin (where the official tarball
# unpacks); override with `make GO=/path/to/go`.
GO ?= $(shell command -v go 2>/dev/null || { test -x /usr/local/go/bin/go && echo /usr/local/go/bin/go; })
# Scripts and go itself may call `go`: put the one found first on PATH.
ifneq ($(GO),)
export PATH := $(dir $(GO)):$(PATH)
export GO
endif

# The Go release series go.mod asks for, e.g. 1.26.
GO_SERIES := $(shell sed -n 's/^go \([0-9]*\.[0-9]*\).*/\1/p' go.mod 2>/dev/null)

.PHONY: help build run test test-browser test-faults bench bench-cluster fmt vet clean services services-stop check-go

help:
	@echo "make build     build bin/tollgate and bin/demo-upstream"
	@echo "make run       start Redis/PostgreSQL if needed, the demo upstream and the gateway (scripts/run.sh)"
	@echo "make test      go vet + go test with real Redis/PostgreSQL (scripts/test.sh; TEST_FLAGS=... to override)"
	@echo "make test-browser  only the browser tests of the admin console (e2e/browser; headless Chromium, installed if missing)"
	@echo "make test-faults  fault-injection suite: private Redis/PostgreSQL, three gateways, faults under load (scripts/test-faults.sh; FAULTS_CYCLES=22)"
	@echo "make bench     plain vs metered proxy benchmark with wrk (bench/run.sh; BENCH_DURATION=15s)"
	@echo "make bench-cluster  fixed-cost charges/s and Redis CPU per charge per master: 1 Redis master vs a cluster of 3 (bench/cluster.sh)"
	@echo "make fmt       gofmt the Go sources"
	@echo "make vet       go vet ./..."
	@echo "make services  make sure Redis and PostgreSQL answer (scripts/services.sh ensure)"
	@echo "make services-stop  stop the private Redis/PostgreSQL started under .data/"
	@echo "make clean     remove bin/ and stray test binaries (keeps .data/ and bench/results/)"

check-go:
	@if [ -z "$(GO)" ]; then \
		echo "error: Go is not installed (not on PATH, not in /usr/local/go/bin)." >&2; \
		echo "Install Go $(GO_SERIES) or newer (https://go.dev/doc/install): download the newest" >&2; \
		echo "go$(GO_SERIES).N.linux-amd64.tar.gz from https://go.dev/dl/ and unpack it into /usr/local:" >&2; \
		echo "  sudo rm -rf /usr/local/go && sudo tar -C /usr/local -xzf go$(GO_SERIES).N.linux-amd64.tar.gz" >&2; \
		echo "or run make with GO=/path/to/go." >&2; \
		exit 1; \
	fi

build: check-go
	$(GO) build -o bin/tollgate ./cmd/tollgate
	$(GO) build -o bin/demo-upstream ./cmd/demo-upstream

run: check-go
	scripts/run.sh

test: check-go
	scripts/test.sh

test-browser: check-go
	TEST_PACKAGES=./e2e/browser/ scripts/test.sh

test-faults: check-go
	scripts/test-faults.sh

bench: check-go
	bench/run.sh

bench-cluster: check-go
	bench/cluster.sh

fmt: check-go
	$(GO) fmt ./...

vet: check-go
	$(GO) vet ./...

services:
	scripts/services.sh ensure

services-stop:
	scripts/services.sh stop

clean:
	rm -rf bin/
	rm -f ./*.test ./*.out
