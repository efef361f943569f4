# auditstream — the commands a developer and CI use.
GO      ?= go
BIN     := bin
TESTFLAGS ?=

.PHONY: all build dev test test-short vet bench bench-long bench-api bench-writer console-screenshots fmt clean

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

## console-screenshots: run the console's browser tests and copy a screenshot
## of each page into docs/screenshots (the README shows them)
console-screenshots:
	rm -rf $(BIN)/screenshots && mkdir -p $(BIN)/screenshots docs/screenshots
	$(GO) test -count=1 -run '^(TestConsole|TestTamperedChain|TestLegalHolds)$$' -artifacts -outputdir $(CURDIR)/$(BIN)/screenshots ./internal/ui/
	for f in $(BIN)/screenshots/_artifacts/*/[0-9][0-9]-*.png; do n=$$(basename $$f); cp $$f docs/screenshots/$${n#[0-9][0-9]-}; done

## vet: static checks
vet:
	@unformatted="$$(gofmt -l client cmd internal deployments)"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## bench-api: single-event and batch POST throughput next to a bare gin handler
bench-api:
	$(GO) test -run '^$$' -bench 'BenchmarkAPI' -benchtime 5s -timeout 20m ./internal/api/

## bench: every stage (api, writer, lag, query, spool, verify) on one machine, ~9 min on 2 cores;
## prints the table and merges bench/results/latest.json
bench:
	$(GO) run ./cmd/auditbench all

## bench-long: the same with bigger sizes (10M query rows, 5 min lag run)
bench-long:
	$(GO) run ./cmd/auditbench all --long

## bench-writer: the in-process writer drain benchmark (writer vs raw COPY vs binary)
bench-writer:
	$(GO) test ./internal/writer/ -run '^$$' -bench 'WriterDrain$$' -benchtime 3x -timeout 60m

fmt:
	gofmt -w client cmd internal deployments

clean:
	rm -rf $(BIN)
