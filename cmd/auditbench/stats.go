package main

import (
	"math"
	"slices"
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
