# auditstream — the commands a developer and CI use.
GO      ?= go
BIN     := bin
TESTFLAGS ?=

.PHONY: all build dev test test-short vet bench bench-api fmt clean

all: build

## build: compile the three binaries (and the dev launcher) into ./bin
build:
	$(GO) build -o $(BIN)/ ./cmd/...

## dev: run the whole pipeline on an embedded broker and a throwaway PostgreSQL
dev: build
	$(BIN)/devstack --bin-dir $(BIN)

## test: vet, then every test (unit and integration, real broker and PostgreSQL)
test: vet
	$(GO) test -count=1 -timeout 15m $(TESTFLAGS) ./...

## vet: static checks
vet:
	@unformatted="$$(gofmt -l cmd internal)"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## bench-api: single-event and batch POST throughput next to a bare gin handler
bench-api:
	$(GO) test -run '^$$' -bench 'BenchmarkAPI' -benchtime 5s -timeout 20m ./internal/api/

## bench: every benchmark
bench: bench-api

fmt:
	gofmt -w cmd internal

clean:
	rm -rf $(BIN)
