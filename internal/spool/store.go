package spool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/syndtr/goleveldb/leveldb/journal"
	"go.uber.org/zap"
)

var (
	// ErrSpooled is returned by Publisher.Publish for records it kept in
	// the spool: accepted (202), not yet in Kafka.
	ErrSpooled = errors.New("accepted into the local spool, not yet in Kafka")
	// ErrFull: the spool holds SPOOL_MAX_BYTES; the records were not
	// accepted (503, retry later).
	ErrFull = errors.New("local spool full")
	// ErrUnwritable: the spool could not write the records to disk (a
	// read-only or full file system, an I/O error); they were not accepted.
	ErrUnwritable = errors.New("local spool cannot be written")
	// ErrClosed: the spool was closed.
	ErrClosed = errors.New("local spool closed")
)

const (
	segmentSuffix = ".seg"
	lockName      = "LOCK"
	// blockSize and chunkHeader are the journal's (LevelDB's log format):
	// they bound what a record costs on disk.
	blockSize   = 32 << 10
	chunkHeader = 7
)

// Config is where the spool lives and how much it may hold.
type Config struct {
	Dir string
	// MaxBytes bounds the segment files on disk (SPOOL_MAX_BYTES).
	MaxBytes int64
	// SegmentBytes is the size past which a segment is sealed and a new
	// one started: a segment is removed whole once every record in it is
	// acknowledged, so this is also how much a restart may publish twice.
	// Zero: MaxBytes/8 within [64 KiB, 16 MiB].
	SegmentBytes int64
}

func (c *Config) setDefaults() {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = min(max(c.MaxBytes/8, 64<<10), 16<<20)
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("spool: directory must be set"))
	}
	if c.MaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("spool: max bytes must be at least 1 MiB, got %d", c.MaxBytes))
	}
	if c.SegmentBytes < 0 {
		errs = append(errs, errors.New("spool: segment bytes must not be negative"))
	}
	return errors.Join(errs...)
}

// segment is one file of the spool. Its fields are guarded by Store.mu.
type segment struct {
	num     uint64
	path    string
	records int       // intact records in it
	bytes   int64     // its size on disk
	firstAt time.Time // spool time of its first record
	sealed  bool      // no more appends: the drainer may read it
	read    bool      // the drainer has read it to its end
	acked   int       // records of it Kafka acknowledged
}

// writing is the segment being appended to, with its journal writer.
type writing struct {
	seg *segment
	f   *os.File
	w   *journal.Writer
	n   *countingWriter
	// committed is the size of the file at the last fsync: what a failed
	// write is cut back to.
	committed int64
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type appendReq struct {
	recs [][]byte
	size int64
	done chan error
}

// Store is the spool on disk: segment files of the LevelDB log format
// (see the package comment), appended to by one committer goroutine that
// writes every waiting record and then fsyncs once (group commit), and
// read from the oldest by one drainer. Records are removed a whole segment
// at a time, once every record of it was acknowledged.
type Store struct {
	cfg     Config
	log     *zap.Logger
	metrics *metrics
	now     func() time.Time
	lock    *os.File
	// broken is why the spool could not be opened; every append fails
	// with it.
	broken error

	// wmu is held by the committer while it writes, and by the drainer to
	// seal the segment it wants to read.
	wmu    sync.Mutex
	active *writing

	mu       sync.Mutex
	queue    []*appendReq
	segs     []*segment // oldest first
	nextSeg  uint64
	records  int   // committed and not yet acknowledged
	pending  int   // queued and not yet committed
	bytes    int64 // segment files on disk
	reserved int64 // what the queued records will take
	oldest   time.Time
	closed   bool
	// refused is set when an append did not fit, until a segment is
	// removed: the spool counts as full meanwhile.
	refused bool
	// backlog mirrors records+pending for the lock-free check of every
	// publish.
	backlog atomic.Int64

	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	// The drainer's cursor, touched by the drainer goroutine only.
	cur      *cursor
	inflight []entry
}

type cursor struct {
	seg  *segment
	f    *os.File
	r    *journal.Reader
	seen int
}

// Open opens the spool in cfg.Dir, creating it if needed, and scans what a
// previous process left: intact records are counted for the drainer, and
// damaged parts (a torn final write, a truncated or corrupted file) are
// reported and skipped. It returns a Store even when it fails, one whose
// every append fails with that error (wrapping ErrUnwritable), so that the
// API keeps publishing to Kafka and answers 503, never 202, when Kafka
// cannot take a record; the files are left as they are for the operator.
func Open(cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Store, error) {
	cfg.setDefaults()
	s := &Store{cfg: cfg, log: log, now: time.Now, nextSeg: 1,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	s.metrics = newMetrics(reg, s)
	if err := cfg.Validate(); err != nil {
		close(s.done)
		return s.fail(err)
	}
	if err := s.open(); err != nil {
		close(s.done)
		return s.fail(err)
	}
	go s.commitLoop()
	return s, nil
}

func (s *Store) fail(err error) (*Store, error) {
	s.broken = fmt.Errorf("%w: %w", ErrUnwritable, err)
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
	}
	return s, s.broken
}

func (s *Store) open() error {
	if err := os.MkdirAll(s.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("create spool directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(s.cfg.Dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open spool lock: %w", err)
	}
	s.lock = lock
	// Two processes appending to one spool would interleave their
	// segments; a second ingest-api on the same volume must not start
	// spooling.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("spool directory %s is in use by another process: %w", s.cfg.Dir, err)
	}
	names, err := filepath.Glob(filepath.Join(s.cfg.Dir, "*"+segmentSuffix))
	if err != nil {
		return err
	}
	for _, path := range names {
		num, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), segmentSuffix), 10, 64)
		if err != nil {
			s.log.Warn("spool: ignoring a file that is not a segment", zap.String("file", path))
			continue
		}
		s.segs = append(s.segs, &segment{num: num, path: path, sealed: true})
		s.nextSeg = max(s.nextSeg, num+1)
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return cmp.Compare(a.num, b.num) })
	kept := s.segs[:0]
	for _, seg := range s.segs {
		if err := s.scan(seg); err != nil {
			return err
		}
		if seg.records == 0 {
			// Nothing in it can be published: an empty segment, or one
			// damaged throughout (reported by scan).
			if err := os.Remove(seg.path); err != nil {
				return fmt.Errorf("remove empty spool segment: %w", err)
			}
			continue
		}
		kept = append(kept, seg)
		s.records += seg.records
		s.bytes += seg.bytes
	}
	s.segs = kept
	if len(s.segs) > 0 {
		s.oldest = s.segs[0].firstAt
	}
	s.backlog.Store(int64(s.records))
	if s.records > 0 {
		s.log.Info("spool holds records of a previous process; they are published once Kafka acknowledges",
			zap.Int("records", s.records), zap.Int64("bytes", s.bytes), zap.Int("segments", len(s.segs)),
			zap.Time("oldest", s.oldest))
	}
	return syncDir(s.cfg.Dir)
}

// scan counts the intact records of a segment a previous process left.
func (s *Store) scan(seg *segment) error {
	f, err := os.Open(seg.path)
	if err != nil {
		return fmt.Errorf("open spool segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat spool segment: %w", err)
	}
	seg.bytes = fi.Size()
	r := journal.NewReader(f, s.dropper(seg), false, true)
	for {
		e, err := s.readOne(r, seg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read spool segment %s: %w", seg.path, err)
		}
		if e == nil {
			continue
		}
		if seg.records == 0 {
			seg.firstAt = e.spooledAt
		}
		seg.records++
	}
}

// readOne reads the next record of r: nil (and no error) for a record that
// was damaged or cannot be decoded, which has been reported; io.EOF at the
// end of the segment; another error when the file cannot be read.
func (s *Store) readOne(r *journal.Reader, seg *segment) (*entry, error) {
	j, err := r.Next()
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(j)
	if err != nil {
		// The journal cut the record short at a damaged chunk; its
		// dropper has reported the damage.
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil
		}
		return nil, err
	}
	e, err := decodeRecord(b)
	if err != nil {
		s.damaged(seg, len(b), err.Error())
		return nil, nil
	}
	e.seg = seg
	return &e, nil
}

// dropper reports the parts of a segment the journal cannot read: a torn
// final write, a truncated file, corrupted bytes. The records in them are
// lost; the records around them drain.
type dropper struct {
	s   *Store
	seg *segment
}

func (s *Store) dropper(seg *segment) journal.Dropper { return dropper{s, seg} }

func (d dropper) Drop(err error) {
	var ce *journal.ErrCorrupted
	size, reason := 0, err.Error()
	if errors.As(err, &ce) {
		size, reason = ce.Size, ce.Reason
	}
	d.s.damaged(d.seg, size, reason)
}

func (s *Store) damaged(seg *segment, size int, reason string) {
	s.metrics.damaged.Inc()
	s.log.Error("spool: skipping a damaged part of a segment (a torn final write, a truncated or corrupted file); records in it are lost, the others drain",
		zap.String("segment", seg.path), zap.Int("bytes", size), zap.String("reason", reason))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// size is what recs take on disk at most: each record's bytes, a chunk
// header per block it spans and the padding of a block it does not fit.
func size(recs [][]byte) int64 {
	var n int64
	for _, r := range recs {
		n += int64(len(r)) + chunkHeader*(int64(len(r))/(blockSize-chunkHeader)+1) + chunkHeader - 1
	}
	return n
}

// Backlog reports whether the spool holds or is writing records: while it
// does, new records go behind them.
func (s *Store) Backlog() bool { return s.backlog.Load() > 0 }

// append queues recs for the next group commit and waits until they are on
// disk. With behind set it queues them only when the spool holds or is
// writing records, and reports false (without error) otherwise, so that
// they go straight to Kafka instead.
func (s *Store) append(recs [][]byte, behind bool) (bool, error) {
	if s.broken != nil {
		return !behind, s.broken
	}
	need := size(recs)
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return true, ErrClosed
	case behind && s.records+s.pending == 0:
		s.mu.Unlock()
		return false, nil
	case s.bytes+s.reserved+need > s.cfg.MaxBytes:
		s.refused = true
		s.mu.Unlock()
		return true, fmt.Errorf("%w: %d bytes held, %d more needed, the limit is %d", ErrFull, s.bytes+s.reserved, need, s.cfg.MaxBytes)
	}
	req := &appendReq{recs: recs, size: need, done: make(chan error, 1)}
	s.queue = append(s.queue, req)
	s.pending += len(recs)
	s.reserved += need
	s.backlog.Add(int64(len(recs)))
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return true, <-req.done
}

// commitLoop is the group commit: it takes every queued append, writes all
// their records, fsyncs once and answers them all.
func (s *Store) commitLoop() {
	defer close(s.done)
	for {
		quit := false
		select {
		case <-s.kick:
		case <-s.quit:
			quit = true
		}
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		if len(batch) > 0 {
			err := s.commit(batch)
			for _, r := range batch {
				r.done <- err
			}
		}
		if quit {
			return
		}
	}
}

func (s *Store) commit(batch []*appendReq) error {
	n, need := 0, int64(0)
	for _, r := range batch {
		n += len(r.recs)
		need += r.size
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.write(batch)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending -= n
	s.reserved -= need
	if err != nil {
		s.backlog.Add(-int64(n))
		s.metrics.writeErrors.Inc()
		return fmt.Errorf("%w: %w", ErrUnwritable, err)
	}
	seg := s.active.seg
	if seg.records == 0 {
		seg.firstAt = s.now()
	}
	if s.records == 0 {
		s.oldest = s.now()
	}
	seg.records += n
	s.records += n
	s.bytes += s.active.n.n - seg.bytes
	seg.bytes = s.active.n.n
	s.active.committed = seg.bytes
	s.metrics.spooled.Add(float64(n))
	s.metrics.fsyncs.Inc()
	if seg.bytes >= s.cfg.SegmentBytes {
		s.sealLocked()
	}
	return nil
}

// write appends the records of batch to the active segment (starting one
// if there is none) and fsyncs it. On failure the segment is cut back to
// its last fsync and sealed, so that no half-written record stays in
// front of later ones; the next append starts a new segment.
func (s *Store) write(batch []*appendReq) error {
	if s.active == nil {
		if err := s.startSegment(); err != nil {
			return err
		}
	}
	a := s.active
	err := func() error {
		for _, r := range batch {
			for _, rec := range r.recs {
				w, err := a.w.Next()
				if err != nil {
					return err
				}
				if _, err := w.Write(rec); err != nil {
					return err
				}
			}
		}
		if err := a.w.Flush(); err != nil {
			return err
		}
		return a.f.Sync()
	}()
	if err == nil {
		return nil
	}
	cut := errors.Join(a.f.Truncate(a.committed), a.f.Sync())
	s.mu.Lock()
	s.sealLocked()
	s.mu.Unlock()
	if cut != nil {
		// The file may now end in a partial record; the journal's
		// checksums make a later reader skip it.
		s.log.Error("spool: cannot cut a failed write back", zap.String("segment", a.seg.path), zap.Error(cut))
	}
	return err
}

func (s *Store) startSegment() error {
	s.mu.Lock()
	seg := &segment{num: s.nextSeg, path: filepath.Join(s.cfg.Dir, fmt.Sprintf("%020d%s", s.nextSeg, segmentSuffix))}
	s.nextSeg++
	s.mu.Unlock()
	f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		return errors.Join(fmt.Errorf("sync spool directory: %w", err), f.Close(), os.Remove(seg.path))
	}
	n := &countingWriter{w: f}
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.mu.Unlock()
	s.active = &writing{seg: seg, f: f, w: journal.NewWriter(n), n: n}
	return nil
}

// sealLocked ends appends to the active segment; s.wmu and s.mu are held.
func (s *Store) sealLocked() {
	if s.active == nil {
		return
	}
	if err := s.active.f.Close(); err != nil {
		s.log.Warn("spool: close segment", zap.String("segment", s.active.seg.path), zap.Error(err))
	}
	s.active.seg.sealed = true
	s.active = nil
}

// peek returns up to n records from the head of the spool, oldest first:
// those handed out before and not acknowledged yet, then the next ones. A
// segment still being appended to is sealed first, so that the drainer
// only ever reads files whose writing has ended.
func (s *Store) peek(n int) ([]entry, error) {
	for len(s.inflight) < n {
		if s.cur == nil {
			seg := s.headUnread()
			if seg == nil {
				break
			}
			if err := s.openCursor(seg); err != nil {
				return s.inflight, err
			}
		}
		e, err := s.readOne(s.cur.r, s.cur.seg)
		if errors.Is(err, io.EOF) {
			s.finishCursor()
			continue
		}
		if err != nil {
			return s.inflight, fmt.Errorf("read spool segment %s: %w", s.cur.seg.path, err)
		}
		if e != nil {
			s.cur.seen++
			s.inflight = append(s.inflight, *e)
		}
	}
	if len(s.inflight) > 0 {
		s.mu.Lock()
		s.oldest = s.inflight[0].spooledAt
		s.mu.Unlock()
	}
	return s.inflight, nil
}

func (s *Store) headUnread() *segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		if !seg.read {
			return seg
		}
	}
	return nil
}

func (s *Store) openCursor(seg *segment) error {
	s.mu.Lock()
	sealed := seg.sealed
	s.mu.Unlock()
	if !sealed {
		s.wmu.Lock()
		s.mu.Lock()
		if s.active != nil && s.active.seg == seg {
			s.sealLocked()
		}
		s.mu.Unlock()
		s.wmu.Unlock()
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return fmt.Errorf("open spool segment: %w", err)
	}
	s.cur = &cursor{seg: seg, f: f, r: journal.NewReader(f, s.dropper(seg), false, true)}
	return nil
}

// finishCursor ends the reading of a segment. Records it was counted with
// that did not read back (damaged since, and reported) are no longer
// waited for.
func (s *Store) finishCursor() {
	c := s.cur
	s.cur = nil
	_ = c.f.Close()
	s.mu.Lock()
	c.seg.read = true
	if lost := c.seg.records - c.seen; lost > 0 {
		c.seg.records = c.seen
		s.records -= lost
		s.backlog.Add(-int64(lost))
	}
	s.mu.Unlock()
	s.removeDone()
}

// ack marks the first n records peek returned as acknowledged by Kafka and
// removes every segment whose records all are.
func (s *Store) ack(n int) {
	done := s.inflight[:n]
	s.mu.Lock()
	for _, e := range done {
		e.seg.acked++
	}
	s.records -= n
	s.backlog.Add(-int64(n))
	switch {
	case len(s.inflight) > n:
		s.oldest = s.inflight[n].spooledAt
	case s.records > 0:
		// The next record is not read yet; it is no older than this one.
		s.oldest = done[n-1].spooledAt
	}
	s.mu.Unlock()
	s.inflight = slices.Delete(s.inflight, 0, n)
	s.removeDone()
}

// removeDone removes the segments at the head that were read to their end
// and whose records were all acknowledged.
func (s *Store) removeDone() {
	for {
		s.mu.Lock()
		if len(s.segs) == 0 || !s.segs[0].read || s.segs[0].acked < s.segs[0].records {
			s.mu.Unlock()
			return
		}
		seg := s.segs[0]
		s.mu.Unlock()
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Error("spool: cannot remove a drained segment; it is tried again after the next acknowledgement",
				zap.String("segment", seg.path), zap.Error(err))
			return
		}
		if err := syncDir(s.cfg.Dir); err != nil {
			s.log.Warn("spool: sync directory", zap.Error(err))
		}
		s.mu.Lock()
		s.segs = s.segs[1:]
		s.bytes -= seg.bytes
		s.refused = false
		s.mu.Unlock()
	}
}

// State is what /health and the metrics show of the spool.
type State struct {
	// State is "empty", "spooling" (holding records), "full" or
	// "unavailable" (the spool cannot be written).
	State            string  `json:"state"`
	Records          int     `json:"records"`
	Bytes            int64   `json:"bytes"`
	MaxBytes         int64   `json:"max_bytes"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

// State returns the spool's state now.
func (s *Store) State() State {
	if s.broken != nil {
		return State{State: "unavailable", MaxBytes: s.cfg.MaxBytes}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{State: "empty", Records: s.records + s.pending, Bytes: s.bytes, MaxBytes: s.cfg.MaxBytes}
	if s.records > 0 {
		st.State = "spooling"
		st.OldestAgeSeconds = max(s.now().Sub(s.oldest).Seconds(), 0)
	}
	// Full: records were refused for lack of room since space was last
	// freed, or one of common size (an event with its headers is 1 to 2
	// KiB) would not fit.
	if s.refused || s.bytes+s.reserved+4<<10 > s.cfg.MaxBytes {
		st.State = "full"
	}
	return st
}

// Err is why the spool could not be opened, nil when it is usable.
func (s *Store) Err() error { return s.broken }

// Room fails when the spool is full: ingest-api stays ready only while it
// has room (SPEC 11).
func (s *Store) Room() error {
	if st := s.State(); st.State == "full" {
		return fmt.Errorf("local spool full (%d of %d bytes)", st.Bytes, st.MaxBytes)
	}
	return nil
}

// Check is the /health probe: it fails when the spool cannot be written or
// is full.
func (s *Store) Check(context.Context) error {
	if s.broken != nil {
		return errors.New("local spool cannot be written; see the ingest-api log")
	}
	return s.Room()
}

// Close stops the committer after it has written what is queued, and
// closes the files. The records stay on disk for the next process.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.broken == nil {
		close(s.quit)
	}
	<-s.done
	var errs []error
	s.wmu.Lock()
	if s.active != nil {
		errs = append(errs, s.active.f.Close())
		s.active = nil
	}
	s.wmu.Unlock()
	if s.cur != nil {
		errs = append(errs, s.cur.f.Close())
		s.cur = nil
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}
