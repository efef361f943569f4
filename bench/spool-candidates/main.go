// Command spoolcand measures the embedded log and queue libraries that
// could hold ingest-api's spool: append+fsync throughput with group commit,
// reading and deleting the head after acknowledgement, and what each does
// with a torn, truncated or corrupted file at open.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/joncrlsn/dque"
	"github.com/syndtr/goleveldb/leveldb/journal"
	"github.com/tidwall/wal"
	bolt "go.etcd.io/bbolt"
)

// store is one candidate behind the same FIFO operations the spool needs.
type store interface {
	appendBatch(recs [][]byte) error // durable when it returns
	head(n int) ([][]byte, error)    // oldest n (or fewer)
	dropHead(n int) error            // remove the oldest n
	close() error
}

type candidate struct {
	name string
	open func(dir string) (store, error)
	// dataFile is the file a torn tail or truncation hits.
	dataFile func(dir string) string
}

func main() {
	records := flag.Int("records", 20000, "records appended per run")
	size := flag.Int("size", 1024, "bytes per record")
	writers := flag.Int("writers", 64, "concurrent appenders")
	base := flag.String("dir", os.TempDir(), "where the stores live")
	flag.Parse()
	debug.SetPanicOnFault(true)

	for _, c := range candidates() {
		dir, err := os.MkdirTemp(*base, "spoolcand-"+c.name)
		must(err)
		s, err := c.open(dir)
		must(err)
		single := appendConcurrent(s, *records, *size, *writers)
		if n, ok := s.(nativeGrouper); ok {
			native := appendNative(n, *records, *size, *writers)
			fmt.Printf("%-8s native concurrent commits %8.0f rec/s\n", c.name, native.rate)
		}
		batch := appendBatches(s, 5000, *size, 4)
		drain := drainAll(s, 500)
		must(s.close())
		fmt.Printf("%-8s group-commit %8.0f rec/s (%5d syncs)  batch-5000 %8.0f rec/s  drain %8.0f rec/s\n",
			c.name, single.rate, single.syncs, batch.rate, drain)
		for _, sc := range scenarios() {
			fmt.Printf("         %-10s %s\n", sc.name, recovery(c, *base, *size, sc))
		}
		_ = os.RemoveAll(dir)
	}
}

type result struct {
	rate  float64
	syncs int
}

// appendConcurrent runs writers goroutines, each appending its share one
// record at a time; a committer gathers whatever is waiting into one
// appendBatch (one fsync), which is the spool's group commit.
func appendConcurrent(s store, n, size, writers int) result {
	type req struct {
		rec  []byte
		done chan error
	}
	reqs := make(chan req, writers)
	var syncs int
	go func() {
		for r := range reqs {
			batch := []req{r}
		gather:
			for {
				select {
				case more, ok := <-reqs:
					if !ok {
						break gather
					}
					batch = append(batch, more)
				default:
					break gather
				}
			}
			recs := make([][]byte, len(batch))
			for i, b := range batch {
				recs[i] = b.rec
			}
			err := s.appendBatch(recs)
			syncs++
			for _, b := range batch {
				b.done <- err
			}
		}
	}()
	start := time.Now()
	fanOut(n, writers, func(i int) {
		done := make(chan error, 1)
		reqs <- req{rec: record(i, size), done: done}
		must(<-done)
	})
	close(reqs)
	return result{rate: float64(n) / time.Since(start).Seconds(), syncs: syncs}
}

// fanOut calls each(i) for i in [0, n) from writers goroutines, each
// taking every writers-th i, and returns when all are done.
func fanOut(n, writers int, each func(i int)) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				each(i)
			}
		})
	}
	wg.Wait()
}

// nativeGrouper is a store whose own commit path groups concurrent
// durable commits (pebble's commit pipeline, bbolt's Batch).
type nativeGrouper interface{ appendOne(rec []byte) error }

func appendNative(s nativeGrouper, n, size, writers int) result {
	start := time.Now()
	fanOut(n, writers, func(i int) { must(s.appendOne(record(i, size))) })
	return result{rate: float64(n) / time.Since(start).Seconds()}
}

func (s *boltStore) appendOne(rec []byte) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, seq), rec)
	})
}

func (s *pebbleStore) appendOne(rec []byte) error {
	s.mu.Lock()
	key := binary.BigEndian.AppendUint64(nil, s.next)
	s.next++
	s.mu.Unlock()
	return s.db.Set(key, rec, pebble.Sync)
}

func appendBatches(s store, per, size, count int) result {
	start := time.Now()
	for b := range count {
		recs := make([][]byte, per)
		for i := range recs {
			recs[i] = record(b*per+i, size)
		}
		must(s.appendBatch(recs))
	}
	return result{rate: float64(per*count) / time.Since(start).Seconds(), syncs: count}
}

func drainAll(s store, per int) float64 {
	start := time.Now()
	total := 0
	for {
		recs, err := s.head(per)
		must(err)
		if len(recs) == 0 {
			break
		}
		must(s.dropHead(len(recs)))
		total += len(recs)
	}
	return float64(total) / time.Since(start).Seconds()
}

type scenario struct {
	name string
	harm func(path string) error
}

func scenarios() []scenario {
	return []scenario{
		{"torn-tail", func(p string) error { // a record half written
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(append(binary.AppendUvarint(nil, 1100), bytes.Repeat([]byte{'x'}, 300)...))
			return err
		}},
		{"truncated", func(p string) error { // the last 100 bytes lost
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()-100)
		}},
		{"zeroed", func(p string) error { // the file grew, the data never came (ext4 after a crash)
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(make([]byte, 4096))
			return err
		}},
		{"bitflip", func(p string) error { // bytes changed in the middle
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i := len(b) / 2; i < len(b)/2+16; i++ {
				b[i] ^= 0x5a
			}
			return os.WriteFile(p, b, 0o600)
		}},
	}
}

// recovery writes 100 records, closes, harms the data file and reopens:
// how many records come back intact, and whether anything else does.
func recovery(c candidate, base string, size int, sc scenario) (out string) {
	dir, err := os.MkdirTemp(base, "spoolcand-rec-"+c.name)
	must(err)
	defer os.RemoveAll(dir)
	s, err := c.open(dir)
	must(err)
	for i := range 100 {
		must(s.appendBatch([][]byte{record(i, size)}))
	}
	must(s.close())
	must(sc.harm(c.dataFile(dir)))
	defer func() {
		if v := recover(); v != nil {
			out = fmt.Sprintf("PANIC: %v", v)
		}
	}()
	s, err = c.open(dir)
	if err != nil {
		return "open fails: " + err.Error()
	}
	defer s.close()
	good, bad := 0, 0
	for {
		var recs [][]byte
		if recs, err = s.head(1000); err != nil || len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if len(r) == size && bytes.Equal(r, record(int(binary.BigEndian.Uint64(r)), size)) {
				good++
			} else {
				bad++
			}
		}
		if err = s.dropHead(len(recs)); err != nil {
			break
		}
	}
	status := fmt.Sprintf("opens; %d of 100 intact, %d garbage returned", good, bad)
	if err != nil {
		status += "; read error: " + err.Error()
	}
	return status
}

// record i: its number, then bytes derived from it, so a read tells an
// intact record from garbage.
func record(i, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, uint64(i))
	for j := 8; j < size; j++ {
		b[j] = byte(i + j)
	}
	return b
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func candidates() []candidate {
	return []candidate{
		{"journal", openJournal, func(dir string) string { return filepath.Join(dir, "segment") }},
		{"wal", openWAL, func(dir string) string { return lastFile(dir) }},
		{"bbolt", openBolt, func(dir string) string { return filepath.Join(dir, "spool.db") }},
		{"pebble", openPebble, func(dir string) string { return lastMatch(dir, "*.log") }},
		{"dque", openDque, func(dir string) string { return lastMatch(filepath.Join(dir, "q"), "*.dque") }},
	}
}

func lastFile(dir string) string {
	es, err := os.ReadDir(dir)
	must(err)
	var names []string
	for _, e := range es {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return filepath.Join(dir, names[len(names)-1])
}

func lastMatch(dir, pattern string) string {
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	must(err)
	if len(m) == 0 {
		panic("no " + pattern + " in " + dir)
	}
	sort.Strings(m)
	return m[len(m)-1]
}

// tidwall/wal

type walStore struct{ l *wal.Log }

func openWAL(dir string) (store, error) {
	l, err := wal.Open(dir, &wal.Options{SegmentSize: 4 << 20, AllowEmpty: true, NoCopy: true})
	if err != nil {
		return nil, err
	}
	return &walStore{l}, nil
}

func (w *walStore) appendBatch(recs [][]byte) error {
	last, err := w.l.LastIndex()
	if err != nil {
		return err
	}
	var b wal.Batch
	for i, r := range recs {
		b.Write(last+1+uint64(i), r)
	}
	return w.l.WriteBatch(&b)
}

func (w *walStore) head(n int) ([][]byte, error) {
	first, err := w.l.FirstIndex()
	if err != nil {
		return nil, err
	}
	last, err := w.l.LastIndex()
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for i := first; i <= last && len(out) < n; i++ {
		r, err := w.l.Read(i)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (w *walStore) dropHead(n int) error {
	first, err := w.l.FirstIndex()
	if err != nil {
		return err
	}
	return w.l.TruncateFront(first + uint64(n))
}

func (w *walStore) close() error { return w.l.Close() }

// bbolt

type boltStore struct{ db *bolt.DB }

var bucket = []byte("spool")

func openBolt(dir string) (store, error) {
	db, err := bolt.Open(filepath.Join(dir, "spool.db"), 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	return &boltStore{db}, err
}

func (s *boltStore) appendBatch(recs [][]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, r := range recs {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), r); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltStore) head(n int) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			out = append(out, bytes.Clone(v))
		}
		return nil
	})
	return out, err
}

func (s *boltStore) dropHead(n int) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.First(); k != nil && n > 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return nil
	})
}

func (s *boltStore) close() error { return s.db.Close() }

// pebble

type pebbleStore struct {
	db          *pebble.DB
	mu          sync.Mutex
	next, first uint64
}

func openPebble(dir string) (store, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}})
	if err != nil {
		return nil, err
	}
	s := &pebbleStore{db: db}
	it, err := db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	if it.Last() {
		s.next = binary.BigEndian.Uint64(it.Key()) + 1
	}
	if it.First() {
		s.first = binary.BigEndian.Uint64(it.Key())
	}
	return s, it.Close()
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(f string, a ...any) {
	panic(fmt.Sprintf(f, a...))
}

func (s *pebbleStore) appendBatch(recs [][]byte) error {
	b := s.db.NewBatch()
	for _, r := range recs {
		if err := b.Set(binary.BigEndian.AppendUint64(nil, s.next), r, nil); err != nil {
			return err
		}
		s.next++
	}
	return b.Commit(pebble.Sync)
}

func (s *pebbleStore) head(n int) ([][]byte, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: binary.BigEndian.AppendUint64(nil, s.first)})
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for ok := it.First(); ok && len(out) < n; ok = it.Next() {
		out = append(out, bytes.Clone(it.Value()))
	}
	return out, errors.Join(it.Error(), it.Close())
}

func (s *pebbleStore) dropHead(n int) error {
	from := binary.BigEndian.AppendUint64(nil, s.first)
	s.first += uint64(n)
	return s.db.DeleteRange(from, binary.BigEndian.AppendUint64(nil, s.first), pebble.Sync)
}

func (s *pebbleStore) close() error { return s.db.Close() }

// dque: turbo on, and one TurboSync per group is its group commit.

type item struct{ B []byte }

type dqueStore struct{ q *dque.DQue }

func openDque(dir string) (store, error) {
	q, err := dque.NewOrOpen("q", dir, 4096, func() any { return &item{} })
	if err != nil {
		return nil, err
	}
	if err := q.TurboOn(); err != nil {
		return nil, err
	}
	return &dqueStore{q}, nil
}

func (s *dqueStore) appendBatch(recs [][]byte) error {
	for _, r := range recs {
		if err := s.q.Enqueue(&item{r}); err != nil {
			return err
		}
	}
	return s.q.TurboSync()
}

// head can only peek at one: dque has no iterator, so the drain pops
// each after its "acknowledgement" (a peek then a dequeue).
func (s *dqueStore) head(n int) ([][]byte, error) {
	v, err := s.q.Peek()
	if errors.Is(err, dque.ErrEmpty) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return [][]byte{v.(*item).B}, nil
}

func (s *dqueStore) dropHead(n int) error {
	for range n {
		if _, err := s.q.Dequeue(); err != nil {
			return err
		}
	}
	return s.q.TurboSync()
}

func (s *dqueStore) close() error { return s.q.Close() }

// goleveldb's journal (the LevelDB log format: 32 KiB blocks of chunks,
// each with a CRC-32C) in one segment file, as internal/spool writes it:
// one Flush and one fsync per group; the drain reads the sealed file and
// removes it whole.

type journalStore struct {
	dir     string
	f       *os.File
	w       *journal.Writer
	r       *journal.Reader
	dropped int
}

func openJournal(dir string) (store, error) {
	f, err := os.OpenFile(filepath.Join(dir, "segment"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &journalStore{dir: dir, f: f}
	if fi.Size() == 0 {
		s.w = journal.NewWriter(f)
	}
	return s, nil
}

func (s *journalStore) appendBatch(recs [][]byte) error {
	for _, r := range recs {
		w, err := s.w.Next()
		if err != nil {
			return err
		}
		if _, err := w.Write(r); err != nil {
			return err
		}
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.f.Sync()
}

type dropCounter struct{ n *int }

func (d dropCounter) Drop(err error) { *d.n++ }

func (s *journalStore) head(n int) ([][]byte, error) {
	if s.r == nil {
		if s.w != nil {
			if err := s.w.Close(); err != nil {
				return nil, err
			}
			s.w = nil
		}
		if _, err := s.f.Seek(0, 0); err != nil {
			return nil, err
		}
		s.r = journal.NewReader(s.f, dropCounter{&s.dropped}, false, true)
	}
	var out [][]byte
	for len(out) < n {
		j, err := s.r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, err
		}
		b, err := io.ReadAll(j)
		if err != nil {
			continue // a dropped chunk: the reader moves on
		}
		out = append(out, b)
	}
	return out, nil
}

func (s *journalStore) dropHead(int) error { return nil }

func (s *journalStore) close() error {
	if s.w != nil {
		if err := s.w.Close(); err != nil {
			return err
		}
	}
	return s.f.Close()
}
