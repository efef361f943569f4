package ui_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/testenv"
)

// stack is ingest-api and the writer as operators run them, with these
// credentials: a service that writes, an auditor who reads and places
// holds, a reader, a team's reader limited to the prod namespace, and a
// clerk who places holds until a test takes the scope away.
type stack struct {
	base                  string
	writer, admin, reader string
	// team reads the prod namespace only.
	team  string
	clerk string

	tokensFile string
	entries    []auth.TokenEntry
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{}
	for _, c := range []struct {
		token      *string
		name       string
		scopes     []auth.Scope
		namespaces []string
	}{
		{&s.writer, "svc-gateway", []auth.Scope{auth.ScopeWrite}, nil},
		{&s.admin, "auditor", []auth.Scope{auth.ScopeRead, auth.ScopeAdmin}, nil},
		{&s.reader, "reader", []auth.Scope{auth.ScopeRead}, nil},
		{&s.team, "team-prod", []auth.Scope{auth.ScopeRead}, []string{"prod"}},
		{&s.clerk, "clerk", []auth.Scope{auth.ScopeRead, auth.ScopeAdmin}, nil},
	} {
		token, entry, err := auth.NewToken(c.name, c.scopes, c.namespaces)
		require.NoError(t, err)
		*c.token = token
		s.entries = append(s.entries, entry)
	}
	s.tokensFile = filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, auth.TokensFile{Tokens: s.entries}.WriteFile(s.tokensFile))
	env := append(shared.env.Kafka.Env(), "DATABASE_URL="+shared.env.Postgres.URL(), "SOURCE_KEYS_FILE="+testenv.NewSourceKeys(t),
		"LOG_FORMAT=json", "SHUTDOWN_DELAY=0s")
	// The writer chains and checkpoints with the keys ingest-api
	// verifies with, so the console's badge is a real verification.
	keys := testenv.NewIntegrityKeys(t)
	writer := testenv.StartProcess(t, binary("writer"), nil,
		append(append(env, keys.Env()...), "METRICS_ADDR="+testenv.NewAddr(t), "CHECKPOINT_INTERVAL=1s")...)
	addr := testenv.NewAddr(t)
	api := testenv.StartProcess(t, binary("ingest-api"), nil,
		append(append(env, keys.APIEnv()...), "HTTP_ADDR="+addr, "METRICS_ADDR="+testenv.NewAddr(t), "AUTH_TOKENS_FILE="+s.tokensFile,
			// A changed tokens file is in force at once (see setScopes).
			"AUTH_FILE_CHECK_INTERVAL=50ms")...)
	s.base = "http://" + addr
	testenv.Await(t, time.Minute, "ingest-api and the writer ready", func() (bool, string) {
		require.True(t, api.Running(), "ingest-api exited:\n%s", api.Stderr.Tail(4<<10))
		require.True(t, writer.Running(), "the writer exited:\n%s", writer.Stderr.Tail(4<<10))
		code, body := s.call(t, "", http.MethodGet, "/health/ready", nil)
		return code == http.StatusOK, fmt.Sprint(code, body)
	})
	return s
}

// setScopes gives the credential name these scopes from now on, as an
// operator would by editing the tokens file, which ingest-api re-reads.
func (s *stack) setScopes(t *testing.T, name, token string, scopes ...auth.Scope) {
	t.Helper()
	for i := range s.entries {
		if s.entries[i].Name == name {
			s.entries[i].Scopes = scopes
		}
	}
	require.NoError(t, auth.TokensFile{Tokens: s.entries}.WriteFile(s.tokensFile))
	want := fmt.Sprintf("%q", scopes)
	testenv.Await(t, time.Minute, "ingest-api read the tokens file again", func() (bool, string) {
		code, body := s.call(t, token, http.MethodGet, "/api/v1/audit/whoami", nil)
		var who struct {
			Scopes []string `json:"scopes"`
		}
		return code == http.StatusOK && json.Unmarshal([]byte(body), &who) == nil && fmt.Sprintf("%q", who.Scopes) == want, body
	})
}

// call sends one request to the API as token.
func (s *stack) call(t *testing.T, token, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.base+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// store posts events, all of one correlation, and waits until the writer
// has stored them.
func (s *stack) store(t *testing.T, events []map[string]any) {
	t.Helper()
	code, body := s.call(t, s.writer, http.MethodPost, "/api/v1/audit/events/batch", events)
	require.Equal(t, http.StatusCreated, code, body)
	corr := events[0]["correlation_id"].(string)
	testenv.Await(t, time.Minute, "the writer stored the events", func() (bool, string) {
		code, body := s.call(t, s.admin, http.MethodGet, "/api/v1/audit/events?limit=1&correlation_id="+url.QueryEscape(corr), nil)
		return code == http.StatusOK && strings.Contains(body, fmt.Sprintf(`"total":%d,`, len(events))), body
	})
}

// chainEvents are n events of one correlation, 55 s apart in publishing
// order (60 of them fit in the last hour) except the 21st, which happened five and a half
// minutes before the one published ahead of it: a late event.
func chainEvents(correlationID string, n int, now time.Time) []map[string]any {
	types := []string{"gateway.signal.received", "analysis.rca.completed", "workflow.step.started", "execution.action.applied", "notification.message.sent"}
	outcomes := []string{"success", "success", "failure", "pending"}
	var out []map[string]any
	for i := range n {
		at := now.Add(-time.Duration(n-i) * 55 * time.Second)
		if i == 20 {
			at = at.Add(-6*time.Minute - 30*time.Second)
		}
		typ := types[i%len(types)]
		e := map[string]any{
			"event_id": uuid.NewString(), "version": "1.0", "event_type": typ, "event_category": strings.Split(typ, ".")[0],
			"event_action": strings.Split(typ, ".")[2], "event_outcome": outcomes[i%len(outcomes)],
			"event_timestamp": at.UTC().Format(time.RFC3339Nano), "correlation_id": correlationID,
			"actor_type": "service", "actor_id": "svc-" + strings.Split(typ, ".")[0], "resource_type": "Signal", "resource_id": "fp-abc123",
			"namespace": []string{"prod", "staging"}[i%2], "severity": "info", "duration_ms": i * 3,
			"event_data": map[string]any{"step": i, "signal": "cpu-high", "labels": map[string]any{"pod": "web-7d9f", "node": "n-12"}},
			// The newer seed fields (SPEC 10).
			"actor_ip": "10.0.12.7", "cluster_id": "eu-west-1a", "is_sensitive": i%2 == 1, "retention_days": 400,
		}
		if e["event_outcome"] == "failure" {
			e["error_code"], e["error_message"] = "E_TIMEOUT", "the remediation job timed out after 30 s"
		}
		out = append(out, e)
	}
	return out
}

// awaitAnchored waits until verify-chain holds the n events of corr to a
// signed checkpoint: the writer publishes one a second, and a badge
// shown before would say none covers the chain yet.
func (s *stack) awaitAnchored(t *testing.T, corr string, n int) {
	t.Helper()
	testenv.Await(t, time.Minute, "a signed checkpoint covers the chain", func() (bool, string) {
		code, body := s.call(t, s.admin, http.MethodPost, "/api/v1/audit/verify-chain", map[string]string{"correlation_id": corr})
		var res struct {
			IsValid    bool `json:"is_valid"`
			Checkpoint *struct {
				Covered int `json:"covered"`
			} `json:"checkpoint"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil {
			return false, fmt.Sprint(code, body)
		}
		return res.IsValid && res.Checkpoint != nil && res.Checkpoint.Covered == n, body
	})
}

// unknownToken is a token nobody issued.
const unknownToken = "ast_not-a-token-anyone-issued"

// TestConsole drives the console in a real browser against the real
// binaries, as an auditor would: sign in, search by correlation_id, page
// forward and back, open an event and copy its data, open its
// correlation's timeline with the verification badge; and checks that the
// token never leaves sessionStorage and the Authorization header.
func TestConsole(t *testing.T) {
	s := startStack(t)
	corr := "console-" + uuid.NewString()
	events := chainEvents(corr, 60, time.Now())
	s.store(t, chainEvents("other-"+uuid.NewString(), 5, time.Now()))
	s.store(t, events)
	s.awaitAnchored(t, corr, 60)

	b := newTab(t)
	step(t, "sign in", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Navigate(s.base + "/ui/"))
		b.await("the sign-in form", `!!document.querySelector("#sign-in-form")`)
		b.shot("signin")
		b.do(chromedp.SendKeys("#token", unknownToken+"\r"))
		b.awaitText("#alert", "The bearer token is not valid here")
		require.Equal(t, "", eval[string](b, `sessionStorage.getItem("auditstream.console.token") ?? ""`), "a refused token is not kept")
		b.do(chromedp.Clear("#token"), chromedp.SendKeys("#token", s.admin+"\r"))
		b.awaitText("#who-name", "auditor")
		require.Contains(t, b.text("#who"), "audit:read audit:admin")
		require.Equal(t, "", b.text("#alert"), "the earlier refusal is gone")
		require.Equal(t, s.admin, eval[string](b, `sessionStorage.getItem("auditstream.console.token")`))
		require.Equal(t, "", eval[string](b, `document.cookie`))
	})

	// The events newest first, as the API orders them.
	newest := slices.Clone(events)
	at := func(e map[string]any) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, e["event_timestamp"].(string))
		require.NoError(t, err)
		return ts
	}
	slices.SortFunc(newest, func(a, b map[string]any) int { return at(b).Compare(at(a)) })
	hrefs := func(evs []map[string]any) []string {
		var out []string
		for _, e := range evs {
			out = append(out, "#/event/"+e["event_id"].(string))
		}
		return out
	}
	rows := func() []string {
		return eval[[]string](b, `[...document.querySelectorAll("#events tbody tr td:first-child a")].map(a => a.getAttribute("href"))`)
	}

	step(t, "search by correlation_id", func(t *testing.T) {
		b.t = t
		b.do(chromedp.SendKeys("#f-correlation_id", corr), chromedp.SetValue("#limit", "25"), chromedp.SetValue("#range", "1h"),
			chromedp.SendKeys("#f-correlation_id", "\r"))
		b.awaitText("#summary", "Events 1–25 of 60, newest first.")
		require.Equal(t, hrefs(newest[:25]), rows())
		b.awaitText("#chart-total", "60")
		require.NotContains(t, b.text("#chart"), "the last 24 hours of the range", "the chart covers the search's hour")
		require.Equal(t, 60, eval[int](b, `[...document.querySelectorAll("#chart-svg rect.bar title")].reduce((n, t) => n + parseInt(t.textContent.split(": ")[1]), 0)`),
			"the bars add up to the total")
		// The results often arrive before the chart: were its box to grow
		// then, the pager below would move under a click aimed at it.
		require.True(t, eval[bool](b, `(async () => {
			const chart = document.querySelector("#chart");
			const box = (await import("./chart.js")).chartPlaceholder("Loading…");
			chart.after(box);
			const same = box.offsetHeight === chart.offsetHeight;
			box.remove();
			return same; })()`), "the chart's box while it loads is as tall as the chart")
		hash := b.hash()
		require.Equal(t, "#/search?correlation_id="+url.QueryEscape(corr)+"&since=1h&limit=25", hash, "the query is in the URL, to share")
		b.shot("search")
	})

	step(t, "page forward and back", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click("#older"))
		b.awaitText("#page-no", "Page 2")
		require.Equal(t, hrefs(newest[25:50]), rows())
		require.Contains(t, b.hash(), "&cursor=")
		b.do(chromedp.Click("#older"))
		b.awaitText("#page-no", "Page 3")
		require.Equal(t, "Events 51–60 of 60, newest first.", b.text("#summary"))
		require.Equal(t, hrefs(newest[50:]), rows())
		require.True(t, eval[bool](b, `document.querySelector("#older").disabled`), "the last page")
		b.do(chromedp.Click("#newer"))
		b.awaitText("#page-no", "Page 2")
		require.Equal(t, hrefs(newest[25:50]), rows())
		b.do(chromedp.Click("#newer"))
		b.awaitText("#page-no", "Page 1")
		require.Equal(t, hrefs(newest[:25]), rows())
		require.True(t, eval[bool](b, `document.querySelector("#newer").disabled`), "the first page")
		// The browser's own Back and Forward move through the pages too.
		b.do(chromedp.Click("#older"))
		b.awaitText("#page-no", "Page 2")
		b.do(chromedp.Evaluate[chromedp.Void](`history.back()`))
		b.awaitText("#page-no", "Page 1")
		require.Equal(t, hrefs(newest[:25]), rows())
	})

	step(t, "event detail", func(t *testing.T) {
		b.t = t
		first := newest[0]
		b.do(chromedp.Click("#events tbody tr:first-child td:first-child a"))
		b.awaitText("#fields", first["event_id"].(string))
		fields := b.text("#fields")
		for _, want := range []string{"correlation_id\n" + corr, "submitted_by\nsvc-gateway", "parent_event_id\nnull", "event_date",
			"actor_ip\n10.0.12.7", "cluster_id\neu-west-1a", "error_code\nnull", "error_message\nnull", "is_sensitive\ntrue", "retention_days\n400"} {
			require.Contains(t, fields, want)
		}
		require.Equal(t, "sensitive", b.text("#sensitive"), "a sensitive event says so at the top")
		chain := b.text("#chain-fields")
		require.Regexp(t, `^chain_seq\n60\nprevious_event_hash\n[0-9a-f]{64}\nevent_hash\n[0-9a-f]{64}\nhash_key_id\ndev-[0-9T.]+\nhash_version\n1$`, chain,
			"the chain fields, apart from the others")
		require.NotContains(t, fields, "event_hash", "the chain fields are shown once")
		var shown, sent any
		require.NoError(t, json.Unmarshal([]byte(b.text("#event-data")), &shown))
		require.NoError(t, json.Unmarshal(mustJSON(t, first["event_data"]), &sent))
		require.Equal(t, sent, shown, "event_data as stored, pretty-printed")

		// Copy with the Clipboard API, and, where the browser refuses
		// it, with the copy command.
		for _, setting := range []browser.PermissionSetting{browser.PermissionSettingGranted, browser.PermissionSettingDenied} {
			b.grant("clipboard-read", browser.PermissionSettingGranted)
			b.grant("clipboard-write", browser.PermissionSettingGranted)
			b.do(chromedp.Evaluate[chromedp.Void](`navigator.clipboard.writeText("")`, chromedp.EvalAwaitPromise))
			b.grant("clipboard-write", setting)
			b.do(chromedp.Click("#copy-data"))
			b.awaitText("#status", "Copy event_data: copied to the clipboard.")
			require.Equal(t, b.text("#event-data"), eval[string](b, `navigator.clipboard.readText()`), "clipboard-write %s", setting)
			b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#status").textContent = ""`))
		}
		b.shot("event")
	})

	step(t, "correlation timeline", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click("#to-correlation"))
		b.awaitText("#timeline-summary", "60 events")
		b.await("the verification badge", `!!document.querySelector("#verify-badge")`)
		// Chain order is storage order, which is the order of the batch.
		require.Equal(t, hrefs(events), eval[[]string](b, `[...document.querySelectorAll("#timeline li.step .step-head a")].map(a => a.getAttribute("href"))`))
		require.Equal(t, "#1", b.text("#timeline li.step .marker"))
		require.Equal(t, []string{"seq-21"}, eval[[]string](b, `[...document.querySelectorAll("#timeline li.late")].map(li => li.id)`),
			"the event that happened before the one stored ahead of it is marked late")
		require.Contains(t, b.text("#seq-21"), "before the previous event")
		require.Contains(t, b.text("#timeline-summary"), "60 events in chain order (chain_seq, the order the writer stored them in); 0 gaps, 1 late.")
		badge := b.text("#verify-badge")
		require.Contains(t, badge, "Chain verified")
		require.Contains(t, badge, "60 of 60 events verified, seq 1–60.")
		require.Regexp(t, `Held to signed checkpoint \d+ of [0-9-]+ [0-9:]+ UTC \(60 events covered\)\.`, badge, "anchored outside the database")
		require.Empty(t, eval[[]string](b, `[...document.querySelectorAll("#timeline li.broken")].map(li => li.id)`), "no break marked")
		b.shot("correlation")
	})

	step(t, "errors show the problem detail", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Navigate(s.base + "/ui/#/search?correlation_id=" + url.QueryEscape(corr)))
		b.awaitText("#summary", "of 60")
		b.do(chromedp.SetValue("#range", "custom"), chromedp.Evaluate[chromedp.Void](`document.querySelector("#range").dispatchEvent(new Event("change"))`))
		b.await("the custom range shows", `!document.querySelector("#custom-range").hidden`)
		b.do(chromedp.SetValue("#since-at", "2026-03-02T10:00:05"), chromedp.SetValue("#until-at", "2026-03-01T10:00:05"),
			chromedp.SendKeys("#f-correlation_id", "\r"))
		b.awaitText("#alert", "Invalid query parameter")
		require.Contains(t, b.text("#alert"), "since must not be after until", "field_errors, by name")
		require.Contains(t, b.hash(), "since=2026-03-02T10%3A00%3A05Z&until=2026-03-01T10%3A00%3A05Z")

		missing := uuid.NewString()
		b.do(chromedp.Navigate(s.base + "/ui/#/event/" + missing))
		b.awaitText("#alert", "Not found: No audit event with event_id "+missing+" is stored")
		require.Contains(t, b.text("main"), "The event cannot be shown (see above).")
	})

	step(t, "keyboard", func(t *testing.T) {
		b.t = t
		// A reload keeps the session: the token is in sessionStorage.
		b.do(chromedp.Navigate(s.base+"/ui/#/search?correlation_id="+url.QueryEscape(corr)), chromedp.Reload())
		b.awaitText("#summary", "of 60")
		b.awaitText("#chart-total", "60")
		require.Contains(t, b.text("#chart"), "the last 24 hours of the range", "an all-time search charts its last day")
		b.do(chromedp.KeyEvent("\t"))
		require.Equal(t, "skip-link", eval[string](b, `document.activeElement.id`), "the first stop is the skip link")
		b.do(chromedp.KeyEvent("\r"))
		require.Equal(t, "main", eval[string](b, `document.activeElement.id`))
		require.Contains(t, b.hash(), "correlation_id=", "skipping keeps the view")
		b.do(chromedp.KeyEvent("\t"))
		require.Equal(t, "f-correlation_id", eval[string](b, `document.activeElement.id`), "then the first filter")
		// Enter in any filter searches; the focus stays in the form.
		b.do(chromedp.KeyEvent("\t"), chromedp.KeyEvent("workflow.step.started\r"))
		b.awaitText("#summary", "Events 1–12 of 12")
		require.Contains(t, b.hash(), "event_type=workflow.step.started")
	})

	step(t, "the token stays in the Authorization header", func(t *testing.T) {
		b.t = t
		var api int
		for _, r := range b.sent() {
			for _, token := range []string{s.admin, s.reader, s.writer} {
				require.NotContains(t, r.URL, token, "a token in a URL")
			}
			u, err := url.Parse(r.URL)
			require.NoError(t, err)
			auth, sent := r.Headers["Authorization"]
			if !strings.HasPrefix(u.Path, "/api/") {
				require.False(t, sent, "%s carried the Authorization header", r.URL)
				continue
			}
			api++
			require.Contains(t, []string{"Bearer " + s.admin, "Bearer " + unknownToken}, auth, "%s: the signed-in token, or the one refused at sign-in", r.URL)
		}
		require.Greater(t, api, 10, "the requests were seen")
	})

	step(t, "sign out", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click("#sign-out"))
		b.await("the sign-in form", `!!document.querySelector("#sign-in-form")`)
		require.Equal(t, "", eval[string](b, `sessionStorage.getItem("auditstream.console.token") ?? ""`))
		require.Equal(t, "", b.text("#who"))
	})

	step(t, "a credential limited to a namespace sees the chain with gaps", func(t *testing.T) {
		b.t = t
		b.signIn(s.base, "#/correlation/"+url.PathEscape(corr), s.team, "team-prod")
		b.awaitText("#who", "namespaces: prod")
		b.awaitText("#timeline-summary", "30 events in chain order")
		require.Contains(t, b.hash(), "#/correlation/", "sign-in goes on to the view asked for")
		require.Contains(t, b.text("#timeline-summary"), "; 29 gaps, 1 late.", "prod holds every other event")
		b.awaitText("#verify-badge", "Could not verify the chain")
		require.Contains(t, b.text("#verify-limited"), "Your credential reads only the namespaces prod: a chain with events outside them is verified with a credential that reads every namespace",
			"why the chain is not verified for this credential")
		require.Equal(t, "Gap: seq 2 not shown (1 event): outside your namespaces, dropped by retention, or missing; the verification above tells whether the chain is intact.",
			b.text("#timeline li.gap p"))
		b.shot("correlation-gaps")
	})
}

// step runs one step of a walk through the console; a failed step ends
// the walk, since every later one starts where it left the page.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
