package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/kafka"
	"github.com/auditstream/auditstream/internal/query"
	"github.com/auditstream/auditstream/internal/store"
	"github.com/auditstream/auditstream/internal/verify"
)

// progressEvery is how often a long run prints its totals on stderr.
const progressEvery = 2 * time.Second

// maxBrokenListed bounds the broken chains a summary lists; the rest are
// counted.
const maxBrokenListed = 100

// verifyGroup is the consumer group the checkpoints are read as. It never
// commits: every run reads the whole topic.
const verifyGroup = "auditctl-verify"

// errNotVerified is the failure of a run that found something wrong; the
// summary says what.
var errNotVerified = errors.New("verification failed")

// verifyJSON is the --json summary of auditctl verify.
type verifyJSON struct {
	OK           bool            `json:"ok"`
	Since        *time.Time      `json:"since,omitempty"`
	Until        *time.Time      `json:"until,omitempty"`
	Checkpoints  checkpointsJSON `json:"checkpoints"`
	Chains       int64           `json:"chains"`
	ValidChains  int64           `json:"valid_chains"`
	BrokenChains []brokenJSON    `json:"broken_chains"`
	// MoreBrokenChains counts the broken chains not listed.
	MoreBrokenChains int64 `json:"more_broken_chains"`
	Events           int64 `json:"events"`
	// DroppedByRetention counts the events retention removed from the
	// chains verified (not tampering).
	DroppedByRetention int64   `json:"dropped_by_retention"`
	Seconds            float64 `json:"seconds"`
}

type checkpointsJSON struct {
	Topic        string   `json:"topic"`
	Read         int      `json:"read"`
	LastID       int64    `json:"last_id"`
	Problems     []string `json:"problems"`
	MoreProblems int      `json:"more_problems"`
}

type brokenJSON struct {
	CorrelationID string      `json:"correlation_id"`
	Breaks        []breakJSON `json:"breaks"`
	MoreBreaks    int64       `json:"more_breaks"`
}

type breakJSON struct {
	Kind     integrity.BreakKind `json:"kind"`
	ChainSeq int64               `json:"chain_seq"`
	EventID  *uuid.UUID          `json:"event_id"`
	Expected string              `json:"expected_hash,omitempty"`
	Actual   string              `json:"actual_hash,omitempty"`
	Message  string              `json:"message"`
}

func breakOf(b integrity.Break) breakJSON {
	j := breakJSON{Kind: b.Kind, ChainSeq: b.ChainSeq, Expected: hex.EncodeToString(b.Expected), Actual: hex.EncodeToString(b.Actual), Message: b.Message}
	if b.EventID != uuid.Nil {
		j.EventID = &b.EventID
	}
	return j
}

// timeRange reads --since and --until as the query parameters are read;
// a bad one is a usage error.
func timeRange(c config.AuditctlVerify, now time.Time) (since, until time.Time, err error) {
	for _, b := range []struct {
		name, v string
		dst     *time.Time
	}{{"--since", c.Since, &since}, {"--until", c.Until, &until}} {
		if b.v == "" {
			continue
		}
		if *b.dst, err = query.ParseTimeBound(b.v, now); err != nil {
			return time.Time{}, time.Time{}, usageError{fmt.Errorf("%s: %w", b.name, err)}
		}
	}
	if !since.IsZero() && !until.IsZero() && since.After(until) {
		return time.Time{}, time.Time{}, usageError{errors.New("--since must not be after --until")}
	}
	return since, until, nil
}

func runVerify(ctx context.Context, c config.AuditctlVerify, out, progress io.Writer) error {
	start := time.Now()
	since, until, err := timeRange(c, start)
	if err != nil {
		return err
	}
	keys, err := integrity.LoadKeys(c.IntegrityKeysFile)
	if err != nil {
		return err
	}
	signers, err := integrity.LoadPublicKeys(c.CheckpointPublicKeys...)
	if err != nil {
		return err
	}

	log, err := readCheckpoints(ctx, c, signers, since, until, progress)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Config{URL: c.DatabaseURL, MaxConns: int32(c.Parallel) + 1})
	if err != nil {
		return fmt.Errorf("cannot reach PostgreSQL: %w", err)
	}
	defer db.Close()
	reader, err := query.NewReader(db.Pool(), query.Config{StatementTimeout: time.Minute, CountCap: 1})
	if err != nil {
		return err
	}
	if err := reader.Checkpoints(ctx, func(cp *query.Checkpoint) error {
		log.CompareStored(cp.ID, cp.Document, cp.PublishedAt != nil)
		return nil
	}); err != nil {
		return err
	}
	log.EndCompare()

	chains, err := chainsToVerify(ctx, reader, log, since, until)
	if err != nil {
		return err
	}
	sum := verifyJSON{Checkpoints: checkpointsJSON{Topic: c.CheckpointsTopic, Read: log.Checkpoints()}, BrokenChains: []brokenJSON{}}
	if !since.IsZero() {
		sum.Since = &since
	}
	if !until.IsZero() {
		sum.Until = &until
	}
	if last := log.Last(); last != nil {
		sum.Checkpoints.LastID = last.ID
	}
	sum.Checkpoints.Problems, sum.Checkpoints.MoreProblems = log.Problems()
	if sum.Checkpoints.Problems == nil {
		sum.Checkpoints.Problems = []string{}
	}
	if err := verifyChains(ctx, verify.New(reader, keys, signers, 0), log, chains, c.Parallel, &sum, progress); err != nil {
		return err
	}
	slices.SortFunc(sum.BrokenChains, func(a, b brokenJSON) int { return strings.Compare(a.CorrelationID, b.CorrelationID) })
	sum.Seconds = time.Since(start).Seconds()
	sum.OK = len(sum.Checkpoints.Problems) == 0 && len(sum.BrokenChains) == 0 && sum.MoreBrokenChains == 0
	if err := printVerify(out, c.JSON, &sum); err != nil {
		return err
	}
	if !sum.OK {
		return errNotVerified
	}
	return nil
}

// readCheckpoints reads the whole checkpoints topic into a log.
func readCheckpoints(ctx context.Context, c config.AuditctlVerify, signers *integrity.PublicKeys, since, until time.Time, progress io.Writer) (*verify.CheckpointLog, error) {
	r, err := kafka.NewReader(c.Kafka.Client(), verifyGroup)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Kafka at %s: %w (check KAFKA_BROKERS / --kafka-brokers)", strings.Join(c.Kafka.Brokers, ","), err)
	}
	defer func() { _ = r.Close() }()
	spans, err := r.Spans(c.CheckpointsTopic)
	if err != nil {
		return nil, err
	}
	log := verify.NewCheckpointLog(signers, since, until)
	last := time.Now()
	n := 0
	for _, span := range spans {
		for m, err := range r.Read(ctx, c.CheckpointsTopic, span) {
			if err != nil {
				return nil, err
			}
			log.Add(m.Value, m.Coordinates())
			if n++; time.Since(last) >= progressEvery {
				last = time.Now()
				fmt.Fprintf(progress, "… %d checkpoint record(s) read from %s\n", n, c.CheckpointsTopic)
			}
		}
	}
	return log, nil
}

// chainsToVerify lists the chains of the run, sorted: those the
// checkpoints of the range recorded and those pending since (every chain
// of the topic and the database without a range).
func chainsToVerify(ctx context.Context, r *query.Reader, log *verify.CheckpointLog, since, until time.Time) ([]string, error) {
	everything := since.IsZero() && until.IsZero()
	chains := log.Changed()
	if everything {
		chains = log.Chains()
	}
	var stored []string
	if err := r.ChainIDs(ctx, !everything, until, func(id string) error {
		stored = append(stored, id)
		return nil
	}); err != nil {
		return nil, err
	}
	// Both sorted bytewise: chain_heads' ids are COLLATE "C".
	chains = append(chains, stored...)
	slices.Sort(chains)
	return slices.Compact(chains), nil
}

// verifyChains verifies chains with parallel workers into sum.
func verifyChains(ctx context.Context, v *verify.Verifier, log *verify.CheckpointLog, chains []string, parallel int, sum *verifyJSON, progress io.Writer) error {
	var mu sync.Mutex
	done := 0
	last := time.Now()
	work := make(chan string)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(work)
		for _, id := range chains {
			select {
			case work <- id:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range parallel {
		g.Go(func() error {
			for id := range work {
				res, err := v.Chain(ctx, id, verify.Options{Anchor: log.Anchor(id), UseAnchor: true})
				if err != nil {
					return err
				}
				mu.Lock()
				record(sum, res)
				if done++; time.Since(last) >= progressEvery {
					last = time.Now()
					fmt.Fprintf(progress, "… %d of %d chain(s) verified: %d broken, %d event(s)\n", done, len(chains), sum.Chains-sum.ValidChains, sum.Events)
				}
				mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

func record(sum *verifyJSON, res verify.Result) {
	sum.Chains++
	sum.Events += res.Events
	sum.DroppedByRetention += res.Dropped
	if res.Valid() {
		sum.ValidChains++
		return
	}
	if len(sum.BrokenChains) >= maxBrokenListed {
		sum.MoreBrokenChains++
		return
	}
	b := brokenJSON{CorrelationID: res.CorrelationID, MoreBreaks: res.MoreBreaks}
	for _, brk := range res.Breaks {
		b.Breaks = append(b.Breaks, breakOf(brk))
	}
	sum.BrokenChains = append(sum.BrokenChains, b)
}

func printVerify(out io.Writer, asJSON bool, sum *verifyJSON) error {
	if asJSON {
		return json.NewEncoder(out).Encode(sum)
	}
	var b strings.Builder
	cp := sum.Checkpoints
	fmt.Fprintf(&b, "checkpoints: %d read from %s (last id %d): ", cp.Read, cp.Topic, cp.LastID)
	if len(cp.Problems) == 0 {
		b.WriteString("signatures, sequence and database records verified\n")
	} else {
		fmt.Fprintf(&b, "%d problem(s)\n", len(cp.Problems)+cp.MoreProblems)
		for _, p := range cp.Problems {
			fmt.Fprintf(&b, "  CHECKPOINT %s\n", p)
		}
		if cp.MoreProblems > 0 {
			fmt.Fprintf(&b, "  ... and %d more\n", cp.MoreProblems)
		}
	}
	fmt.Fprintf(&b, "chains: %d verified, %d valid, %d broken; %d event(s)", sum.Chains, sum.ValidChains, sum.Chains-sum.ValidChains, sum.Events)
	if sum.DroppedByRetention > 0 {
		fmt.Fprintf(&b, "; %d removed by retention", sum.DroppedByRetention)
	}
	fmt.Fprintf(&b, " (%.1f s)\n", sum.Seconds)
	for _, c := range sum.BrokenChains {
		first := c.Breaks[0]
		fmt.Fprintf(&b, "  BROKEN %s at chain_seq %d (%s): %s", c.CorrelationID, first.ChainSeq, first.Kind, first.Message)
		if more := int64(len(c.Breaks)-1) + c.MoreBreaks; more > 0 {
			fmt.Fprintf(&b, " [%d more break(s)]", more)
		}
		b.WriteString("\n")
	}
	if sum.MoreBrokenChains > 0 {
		fmt.Fprintf(&b, "  ... and %d more broken chain(s) (--json lists the first %d)\n", sum.MoreBrokenChains, maxBrokenListed)
	}
	if sum.OK {
		b.WriteString("result: every chain verifies\n")
	} else {
		b.WriteString("result: NOT VERIFIED\n")
	}
	_, err := io.WriteString(out, b.String())
	return err
}
