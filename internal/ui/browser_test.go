package ui_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromium is Debian's browser, which .ci/run installs.
const chromium = "/usr/bin/chromium"

// tab is one headless Chromium tab, driven over the DevTools
// protocol, that saves a screenshot of each page it is asked to.
type tab struct {
	t     *testing.T
	ctx   context.Context
	shots string // directory of the screenshots
	n     int

	mu sync.Mutex
	// problems are the exceptions and the Content-Security-Policy
	// violations the page reported: any is a failure.
	problems []string
	// requests are every request the page sent.
	requests []*network.Request
}

// newTab starts Chromium with a profile of its own. The flags keep it
// from calling home (its connections would be refused here, and slow it
// down), and from needing a GPU or a sandbox.
func newTab(t *testing.T) *tab {
	t.Helper()
	_, err := os.Stat(chromium)
	require.NoError(t, err, "the console tests need Debian's chromium (apt-get install chromium; .ci/run does it)")
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	b := &tab{t: t, ctx: ctx, shots: t.ArtifactDir()}
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 960)), "start chromium")
	messages := chromedp.Console(ctx)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range requests {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.requests = append(b.requests, ev.Request)
			b.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelTimeout()
		wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		require.Empty(t, b.problems, "the page reported exceptions or CSP violations")
		t.Logf("screenshots in %s", b.shots)
	})
	return b
}

// do runs actions on the tab.
func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, actions...))
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, expr)
	return v
}

// await waits until a JavaScript expression is true in the page: the
// console's views render after their API calls answer.
func (b *tab) await(what, expr string) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingMutation()))
	if err != nil {
		b.shot("failed")
	}
	require.NoError(b.t, err, "%s (%s); the page says: %s", what, expr, b.text("body"))
}

// awaitText waits until the element of sel shows want.
func (b *tab) awaitText(sel, want string) {
	b.t.Helper()
	b.await(fmt.Sprintf("%s shows %q", sel, want), fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").includes(%q)`, sel, want))
}

// text returns the text of the element of sel ("" when there is none).
func (b *tab) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ""`, sel))
}

// hash is the URL's fragment: the console's view and its query.
func (b *tab) hash() string {
	b.t.Helper()
	return eval[string](b, `location.hash`)
}

// signIn opens the console at view (a fragment such as "#/holds"), signs
// in with token and waits until the console greets name.
func (b *tab) signIn(base, view, token, name string) {
	b.t.Helper()
	b.do(chromedp.Navigate(base + "/ui/" + view))
	b.await("the sign-in form", `!!document.querySelector("#sign-in-form")`)
	b.do(chromedp.SendKeys("#token", token+"\r"))
	b.awaitText("#who-name", name)
}

// shot saves a screenshot of the top of the page (1280×960, what a
// person sees first, wherever a click scrolled to) as NN-name.png; make
// console-screenshots copies them to docs/screenshots.
func (b *tab) shot(name string) {
	b.t.Helper()
	b.checkPage()
	b.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	require.NoError(b.t, err)
	b.n++
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name)), png, 0o644))
}

// grant sets a permission of the page's origin, such as clipboard-write.
func (b *tab) grant(name string, setting browser.PermissionSetting) {
	b.t.Helper()
	origin := eval[string](b, `location.origin`)
	_, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: name}, Setting: setting, Origin: origin})
	require.NoError(b.t, err)
}

// sent returns the requests the page has sent so far.
func (b *tab) sent() []*network.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.requests)
}

// checkPage fails the test when a control of the page has no label, or
// when an id is used twice (a label for= would then point at either).
func (b *tab) checkPage() {
	b.t.Helper()
	unlabelled := eval[[]string](b, `[...document.querySelectorAll("input, select, textarea")]
		.filter(el => !el.classList.contains("offscreen") && el.labels.length === 0 && !el.getAttribute("aria-label"))
		.map(el => el.outerHTML)`)
	require.Empty(b.t, unlabelled, "controls without a label")
	dupes := eval[[]string](b, `(() => { const seen = new Set(), twice = [];
		for (const el of document.querySelectorAll("[id]")) { if (seen.has(el.id)) twice.push(el.id); seen.add(el.id); }
		return twice; })()`)
	require.Empty(b.t, dupes, "ids used twice")
}
