package main

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// latencies collects request durations.
type latencies []time.Duration

// quantile returns the q-quantile (0..1) by the nearest-rank method: the
// smallest sample that at least q of all samples are at or below, so a p99
// of 500 samples is the 495th smallest, an observed value.
func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(math.Ceil(q * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

func (l latencies) max() time.Duration {
	if len(l) == 0 {
		return 0
	}
	return slices.Max(l)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the middle value (the lower middle one of an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// formatRatios lists ratios as "0.81 / 0.86 / 0.84".
func formatRatios(v []float64) string {
	parts := make([]string, len(v))
	for i, r := range v {
		parts[i] = strconv.FormatFloat(r, 'f', 3, 64)
	}
	return strings.Join(parts, " / ")
}
