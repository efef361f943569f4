package ui

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// luminance is the WCAG 2 relative luminance of a #rrggbb colour.
func luminance(t *testing.T, hex string) float64 {
	t.Helper()
	require.Regexp(t, `^#[0-9a-fA-F]{6}$`, hex)
	var l [3]float64
	for i := range l {
		v, err := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		require.NoError(t, err)
		c := float64(v) / 255
		if c <= 0.03928 {
			l[i] = c / 12.92
		} else {
			l[i] = math.Pow((c+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
}

func contrast(t *testing.T, a, b string) float64 {
	la, lb := luminance(t, a), luminance(t, b)
	return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)
}

// TestColoursMeetWCAGAA: every text colour of the stylesheet on the
// backgrounds it is used on reaches 4.5:1 (WCAG 2 AA for text), and the
// focus ring 3:1 against the page (non-text contrast).
func TestColoursMeetWCAGAA(t *testing.T) {
	h, err := NewHandler()
	require.NoError(t, err)
	css := string(h.files["style.css"].body)
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-fA-F]{6});`).FindAllStringSubmatch(css, -1) {
		vars[m[1]] = m[2]
	}
	color := func(name string) string {
		if name[0] == '#' {
			return name
		}
		v, ok := vars[name]
		require.True(t, ok, "no --%s in style.css", name)
		return v
	}
	for _, pair := range []struct {
		fg, bg string
		min    float64
	}{
		{"ink", "paper", 4.5}, {"ink", "wash", 4.5}, {"muted", "paper", 4.5}, {"muted", "wash", 4.5},
		{"link", "paper", 4.5}, {"link", "wash", 4.5}, {"#ffffff", "brand", 4.5},
		{"ok-ink", "ok-bg", 4.5}, {"bad-ink", "bad-bg", 4.5}, {"warn-ink", "warn-bg", 4.5}, {"ink", "info-bg", 4.5},
		{"#ffffff", "bad-ink", 4.5},                                          // the release button
		{"#5b6472", "#e5e8ec", 4.5},                                          // a disabled button
		{"ink", "#eef1f4", 4.5},                                              // table headings, the pending badge
		{"muted", "#f6f8fa", 4.5},                                            // event_data's block
		{"focus", "paper", 3}, {"focus", "wash", 3}, {"#ffffff", "brand", 3}, // focus rings (in the header, white)
	} {
		t.Run(fmt.Sprintf("%s on %s", pair.fg, pair.bg), func(t *testing.T) {
			require.GreaterOrEqual(t, contrast(t, color(pair.fg), color(pair.bg)), pair.min)
		})
	}
}
