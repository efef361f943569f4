package auth

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimitedPrincipals bounds the limiter's memory (about 100 bytes per
// principal). Principals are authenticated, so only as many exist as there
// are credentials; the bound is against an issuer minting many subjects.
const maxLimitedPrincipals = 10000

// Limiter is a token bucket per principal (SPEC 8.4): rps tokens a second
// up to burst, a request costing its number of events. It keys on the
// principal's name, never on a client address, so forged X-Forwarded-For
// headers cannot spread one client over many buckets.
type Limiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// NewLimiter returns a limiter of rps events a second with bursts of burst.
func NewLimiter(rps float64, burst int) (*Limiter, error) {
	if rps <= 0 || burst < 1 {
		return nil, errors.New("auth: rate limit and burst must be positive")
	}
	return &Limiter{limit: rate.Limit(rps), burst: burst, now: time.Now, buckets: make(map[string]*rate.Limiter)}, nil
}

// Allow takes n tokens from name's bucket. When they are not there it takes
// none and says how long until they will be.
func (l *Limiter) Allow(name string, n int) (ok bool, retryAfter time.Duration) {
	now := l.now()
	b := l.bucket(name, now)
	r := b.ReserveN(now, n)
	if !r.OK() {
		// More than a full bucket can ever hold: waiting will not help,
		// so say how long a full bucket takes to refill.
		return false, time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *Limiter) bucket(name string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[name]; ok {
		return b
	}
	if len(l.buckets) >= maxLimitedPrincipals {
		l.evict(now)
	}
	b := rate.NewLimiter(l.limit, l.burst)
	l.buckets[name] = b
	return b
}

// evict drops the buckets that have refilled: a full bucket is the same as
// a new one, so forgetting it loses nothing. If every principal is busy, an
// arbitrary one is forgotten (it gets a fresh burst) to keep the bound.
func (l *Limiter) evict(now time.Time) {
	for name, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, name)
		}
	}
	for name := range l.buckets {
		if len(l.buckets) < maxLimitedPrincipals {
			break
		}
		delete(l.buckets, name)
	}
}
