package auth

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// reloading holds a value loaded from files and loads it again when one of
// them changes, without a restart. It polls with os.Stat, at most once per
// interval and only when the value is asked for, rather than watching with
// inotify (fsnotify): Kubernetes updates a mounted Secret by swapping a
// symlink to a new directory, editors replace files by rename, and
// network filesystems send no events at all, while a stat that follows the
// symlink sees every one of these as a different file. One stat every few
// seconds costs nothing, needs no goroutine to start and stop, and the
// request that performs it pays about a microsecond.
//
// A file that fails to load keeps the last good value in force (an
// operator's typo must not lock every client out) and is reported through
// onError until it loads again.
type reloading[T any] struct {
	paths    []string
	load     func() (*T, error)
	onError  func(error)
	onReload func()
	interval time.Duration
	now      func() time.Time

	value     atomic.Pointer[T]
	nextCheck atomic.Int64 // unix nanoseconds; a CAS on it elects the checker
	stats     []os.FileInfo
}

func newReloading[T any](paths []string, interval time.Duration, load func() (*T, error), onReload func(), onError func(error)) (*reloading[T], error) {
	r := &reloading[T]{paths: paths, load: load, onReload: onReload, onError: onError, interval: interval, now: time.Now}
	stats, err := r.stat()
	if err != nil {
		return nil, err
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	r.stats = stats
	r.value.Store(v)
	r.nextCheck.Store(r.now().Add(interval).UnixNano())
	return r, nil
}

// get returns the current value, first reloading it if its files changed
// and the interval since the last look has passed.
func (r *reloading[T]) get() *T {
	next := r.nextCheck.Load()
	now := r.now()
	if now.UnixNano() >= next && r.nextCheck.CompareAndSwap(next, now.Add(r.interval).UnixNano()) {
		// Only the goroutine that won the CAS gets here until the next
		// interval, so stats needs no lock.
		r.check()
	}
	return r.value.Load()
}

func (r *reloading[T]) check() {
	stats, err := r.stat()
	if err != nil {
		r.onError(err)
		return
	}
	if !changed(r.stats, stats) {
		return
	}
	v, err := r.load()
	if err != nil {
		r.onError(err)
		return // stats stay old: the next look tries again
	}
	r.stats = stats
	r.value.Store(v)
	r.onReload()
}

func (r *reloading[T]) stat() ([]os.FileInfo, error) {
	out := make([]os.FileInfo, len(r.paths))
	for i, p := range r.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", p, err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("%s is a directory", p)
		}
		out[i] = fi
	}
	return out, nil
}

// changed reports whether any file is another file (a new inode behind the
// same path, as a symlink swap or a rename makes) or was rewritten in place.
func changed(old, cur []os.FileInfo) bool {
	for i := range old {
		if !os.SameFile(old[i], cur[i]) || !old[i].ModTime().Equal(cur[i].ModTime()) || old[i].Size() != cur[i].Size() {
			return true
		}
	}
	return false
}
