package ui_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/auth"
)

// TestLegalHolds drives the legal hold pages against the real routes: an
// auditor with audit:admin places a hold from the correlation view, sees
// it listed and on the correlation, is told why a second one is refused,
// and releases it; a reader sees the holds without the controls; a clerk
// whose audit:admin is taken away while signed in is refused by the
// server, sees the problem detail, and the controls go away.
func TestLegalHolds(t *testing.T) {
	s := startStack(t)
	corr := "hold-" + uuid.NewString()
	s.store(t, chainEvents(corr, 6, time.Now()))
	s.awaitAnchored(t, corr, 6)
	b := newTab(t)
	rowSel := `#holds tr[data-correlation="` + corr + `"]`
	const reason = "Case 2026-117: counsel asked to keep the remediation trail"

	step(t, "place a hold as an admin", func(t *testing.T) {
		b.t = t
		b.signIn(s.base, "#/correlation/"+url.PathEscape(corr), s.admin, "auditor")
		b.awaitText("#hold-status", "No legal hold on this correlation.")
		// The badge above arrives on its own: a click waits until the page
		// stands still.
		b.awaitText("#verify-badge", "Chain verified")
		b.do(chromedp.Click("#manage-hold"))
		b.awaitText("#holds-summary", "in force")
		require.Equal(t, corr, eval[string](b, `document.querySelector("#hold-correlation").value`), "the correlation is filled in")
		b.do(chromedp.SendKeys("#hold-reason", reason), chromedp.Click("#place-hold"))
		b.awaitText("#hold-notice", "Hold placed on "+corr+" by auditor (6 events).")
		b.await("the hold listed", `!!document.querySelector('`+rowSel+`')`)
		require.Equal(t, []string{corr, "6", "auditor", reason},
			eval[[]string](b, `[...document.querySelectorAll('`+rowSel+` td')].slice(0, 5).filter((_, i) => i !== 3).map(td => td.innerText)`))
		require.Regexp(t, `^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$`, eval[string](b, `document.querySelector('`+rowSel+` td:nth-child(4)').innerText`))
		require.Equal(t, "", b.text("#alert"))
		b.shot("holds")
	})

	step(t, "the correlation shows its hold", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click(rowSel + " td a"))
		b.awaitText("#hold-status", "Legal hold since")
		require.Contains(t, b.text("#hold-status"), "by auditor: "+reason)
		require.Equal(t, "Manage holds", b.text("#manage-hold"))
		b.awaitText("#verify-badge", "Chain verified")
	})

	step(t, "a second hold is refused with the problem detail", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click("#manage-hold"))
		b.await("the hold listed", `!!document.querySelector('`+rowSel+`')`)
		b.do(chromedp.SendKeys("#hold-reason", "again"), chromedp.Click("#place-hold"))
		b.awaitText("#alert", `A legal hold on correlation_id "`+corr+`" is already in force; release it first to place another.`)
	})

	step(t, "release the hold as an admin", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click(rowSel + " button.release"))
		b.await("the release form", `!!document.querySelector(".release-form")`)
		// Without a reason the server refuses, and says which field.
		b.do(chromedp.Click("#confirm-release"))
		b.awaitText("#alert", "release_reason")
		b.do(chromedp.SendKeys(`.release-form textarea`, "Case 2026-117 closed"), chromedp.Click("#confirm-release"))
		b.awaitText("#hold-notice", "Hold on "+corr+" released by auditor (6 events).")
		b.await("the hold gone from the list", `!document.querySelector('`+rowSel+`')`)
		require.Equal(t, "", b.text("#alert"), "the earlier refusals are gone")
		code, body := s.call(t, s.admin, http.MethodGet, "/api/v1/audit/legal-hold", nil)
		require.Equal(t, http.StatusOK, code, body)
		require.NotContains(t, body, corr, "released on the server")
	})

	step(t, "a reader sees the holds without the controls", func(t *testing.T) {
		b.t = t
		code, body := s.call(t, s.admin, http.MethodPost, "/api/v1/audit/legal-hold", map[string]string{"correlation_id": corr, "reason": reason})
		require.Equal(t, http.StatusOK, code, body)
		b.do(chromedp.Click("#sign-out"))
		b.signIn(s.base, "#/holds", s.reader, "reader")
		b.await("the hold listed", `!!document.querySelector('`+rowSel+`')`)
		require.Contains(t, b.text("#admin-needed"), "needs the audit:admin scope, which reader does not hold")
		require.False(t, eval[bool](b, `!!document.querySelector("#place-hold-form, #holds button")`), "no control to place or release")
		require.Equal(t, 5, eval[int](b, `document.querySelectorAll("#holds thead th").length`), "no Action column")
		b.shot("holds-reader")
		b.do(chromedp.Click(rowSel + " td a"))
		b.awaitText("#hold-status", "Legal hold since")
		require.False(t, eval[bool](b, `!!document.querySelector("#manage-hold")`), "no link to manage holds")
	})

	step(t, "the server refuses a clerk whose audit:admin was taken away", func(t *testing.T) {
		b.t = t
		b.do(chromedp.Click("#sign-out"))
		b.signIn(s.base, "#/holds", s.clerk, "clerk")
		b.await("the hold listed", `!!document.querySelector('`+rowSel+`')`)
		require.True(t, eval[bool](b, `!!document.querySelector("#place-hold-form")`), "a clerk may place holds")
		// The console went by the scopes of sign-in; the server goes by
		// the tokens file, which an operator now changes.
		s.setScopes(t, "clerk", s.clerk, auth.ScopeRead)
		b.do(chromedp.Click(rowSel + " button.release"))
		b.await("the release form", `!!document.querySelector(".release-form")`)
		b.do(chromedp.SendKeys(`.release-form textarea`, "not mine to release"), chromedp.Click("#confirm-release"))
		b.awaitText("#alert", "This credential lacks the scope audit:admin, which DELETE /api/v1/audit/legal-hold/*correlation_id requires.")
		require.Contains(t, b.text("#alert"), "Forbidden")
		b.await("the controls gone", `!!document.querySelector("#admin-needed")`)
		require.False(t, eval[bool](b, `!!document.querySelector("#place-hold-form, #holds button")`))
		require.Equal(t, "audit:read · namespaces: all", eval[string](b, `document.querySelector("#who .who-scopes").innerText`))
		require.Contains(t, b.text("#alert"), "audit:admin", "the refusal stays in view")
		b.shot("holds-refused")
		b.await("the hold still listed", `!!document.querySelector('`+rowSel+`')`)
		code, body := s.call(t, s.admin, http.MethodGet, "/api/v1/audit/legal-hold", nil)
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, corr, "still held")
	})
}
