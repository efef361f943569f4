package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/client"
)

func Example() {
	api := exampleAPI() // stands in for ingest-api so that the example runs
	defer api.Close()
	ctx := context.Background()

	c, err := client.New(api.URL,
		client.WithToken("dev-token"),
		client.WithFailureHandler(func(f client.Failure) {
			// Refused by the server, or still unsent when Close gave up:
			// f.Event holds the JSON to keep or send again.
			log.Printf("audit event %s not delivered: %v", f.EventID, f.Err)
		}),
	)
	if err != nil {
		log.Fatal(err)
	}

	err = c.Send(ctx, client.Event{
		Version:       "1.0",
		EventType:     "workflow.step.finished",
		EventCategory: client.CategoryWorkflow,
		EventAction:   "finished",
		EventOutcome:  client.OutcomeSuccess,
		CorrelationID: "rr-2025-001",
		ActorType:     new("service"),
		ActorID:       new("remediation-orchestrator"),
		DurationMS:    new(int64(1500)),
		EventData:     map[string]any{"step": 1, "workflow": "restart-pod"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// A bad event fails at the call, with every field the server would reject.
	err = c.Send(ctx, client.Event{Version: "1.0", EventType: "workflow.step.started",
		EventCategory: "billing", EventAction: "started", EventOutcome: "started",
		CorrelationID: "rr-2025-001", EventData: map[string]any{}})
	var invalid *client.ValidationError
	if errors.As(err, &invalid) {
		for _, fe := range invalid.Errors {
			fmt.Printf("%s: %s\n", fe.Field, fe.Message)
		}
	}

	// Close delivers what is buffered, retrying until its context ends.
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Close(closeCtx); err != nil {
		log.Print(err)
	}
	// Output:
	// event_category: must be one of: gateway, notification, analysis, signalprocessing, workflow, execution, orchestration
	// event_outcome: must be one of: success, failure, pending
	// server: 1 events from Bearer dev-token
}

// exampleAPI answers batch requests as ingest-api does when all is well.
func exampleAPI() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var events []json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&events); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Printf("server: %d events from %s\n", len(events), r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"message":"%d audit events accepted"}`, len(events))
	}))
}

// TestReadmeShowsExample keeps the README's "Go client" example the same
// code as Example, less the stand-in server, with a real URL and token.
func TestReadmeShowsExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "example_test.go", src, 0)
	require.NoError(t, err)
	var body string
	for _, d := range file.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "Example" {
			body = string(src[fset.Position(fn.Body.Lbrace).Offset+1 : fset.Position(fn.Body.Rbrace).Offset])
		}
	}
	body, _, found := strings.Cut(body, "\t// Output:")
	require.True(t, found, "Example has an Output comment")
	var lines []string
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, "api :=") || strings.Contains(line, "api.Close") || strings.Contains(line, "ctx := context.Background()") {
			continue // the stand-in server and the example's own context
		}
		lines = append(lines, strings.TrimPrefix(line, "\t"))
	}
	want := strings.NewReplacer("api.URL", `"https://audit.example.com"`, `"dev-token"`, "token").
		Replace("```go\n" + strings.TrimSpace(strings.Join(lines, "\n")) + "\n```\n")
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	if !strings.Contains(string(readme), want) {
		t.Errorf("README.md does not show Example; expected the block:\n%s", want)
	}
}
