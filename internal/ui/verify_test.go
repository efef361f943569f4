package ui_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/verify/verifytest"
)

// TestTamperedChain: one stored event rewritten behind the writer's back,
// as a PostgreSQL superuser can (the append-only triggers bypassed), turns
// the correlation view's badge to Not verified, naming that event, and
// the timeline marks it where it stands.
func TestTamperedChain(t *testing.T) {
	s := startStack(t)
	corr := "tampered-" + uuid.NewString()
	events := chainEvents(corr, 8, time.Now())
	s.store(t, events)
	s.awaitAnchored(t, corr, len(events))

	pool, err := pgxpool.New(t.Context(), shared.env.Postgres.URL())
	require.NoError(t, err)
	defer pool.Close()
	broken := events[4]["event_id"].(string)
	require.NoError(t, verifytest.Exec(t.Context(), pool,
		`UPDATE audit_events SET event_data = jsonb_set(event_data, '{signal}', '"disk-full"') WHERE correlation_id = $1 AND chain_seq = 5`, corr))

	b := newTab(t)
	// Verifying needs audit:read only: a reader sees the break too.
	b.signIn(s.base, "#/correlation/"+url.PathEscape(corr), s.reader, "reader")
	b.awaitText("#verify-badge", "Not verified")
	badge := b.text("#verify-badge")
	require.Contains(t, badge, "Not verified: the chain is broken at seq 5")
	require.Contains(t, badge, "7 of 8 events verified, seq 1–8.")
	require.Contains(t, badge, "seq 5, event "+broken+" (altered)")
	require.Equal(t, "#/event/"+broken, eval[string](b, `document.querySelector("#verify-badge li a").getAttribute("href")`), "the broken event, a click away")
	b.awaitText("#seq-5", "chain broken here (altered)")
	require.Equal(t, []string{"seq-5"}, eval[[]string](b, `[...document.querySelectorAll("#timeline li.broken")].map(li => li.id)`))
	b.shot("correlation-broken")

	b.do(chromedp.Click("#verify-badge li a"))
	b.awaitText("#fields", broken)
	require.Contains(t, b.text("#event-data"), `"signal": "disk-full"`, "the event as it is stored now")
}
