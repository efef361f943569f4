// Package verifytest changes stored chains behind the writer's back, as
// someone with superuser access to PostgreSQL would (the append-only
// triggers bypassed with session_replication_role = replica), for the
// tests of verify-chain, auditctl verify and the export. Only tests import
// it.
package verifytest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditstream/auditstream/internal/audit"
	"github.com/auditstream/auditstream/internal/integrity"
	"github.com/auditstream/auditstream/internal/keyring"
	"github.com/auditstream/auditstream/internal/store"
)

// ChainLength is the length of the chains the tamperings apply to.
const ChainLength = 5

// Events returns n events of the chain corr, ready to store in order.
func Events(corr string, n int) []audit.Event {
	events := make([]audit.Event, n)
	ns := "payments"
	for i := range events {
		by := "svc-payments"
		events[i] = audit.Event{EventID: uuid.New(), Version: "1.0", EventType: "payment.captured",
			EventTimestamp: time.Now().UTC().Truncate(time.Microsecond).Add(-time.Duration(n-i) * time.Second),
			EventCategory:  "gateway", EventAction: "captured", EventOutcome: "success", CorrelationID: corr,
			EventData: json.RawMessage(fmt.Sprintf(`{"amount": %d, "currency": "EUR", "step": {"n": %d}}`, 100+i, i)),
			Namespace: &ns, SubmittedBy: &by}
	}
	return events
}

// Exec runs sql in a transaction that bypasses the append-only triggers,
// as a superuser would.
func Exec(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
}

// Tampering is one change of a stored chain of ChainLength events, all
// covered by a signed checkpoint, and how verification must name it.
type Tampering struct {
	Name string
	Kind integrity.BreakKind
	// Seq is the chain_seq the first break is reported at.
	Seq   int64
	Apply func(ctx context.Context, pool *pgxpool.Pool, keys *integrity.Keys, corr string) error
}

// Tamperings are the changes SPEC 9.3's verification must report (issue
// 11): keys are the chain's, which only the last one uses, as an attacker
// who holds them would.
func Tamperings() []Tampering {
	at := func(sql string) func(context.Context, *pgxpool.Pool, *integrity.Keys, string) error {
		return func(ctx context.Context, pool *pgxpool.Pool, _ *integrity.Keys, corr string) error {
			return Exec(ctx, pool, sql, corr)
		}
	}
	return []Tampering{
		{"a field of event_data changed", integrity.BreakAltered, 3,
			at(`UPDATE audit_events SET event_data = jsonb_set(event_data, '{amount}', '1') WHERE correlation_id = $1 AND chain_seq = 3`)},
		{"submitted_by changed", integrity.BreakAltered, 2,
			at(`UPDATE audit_events SET submitted_by = 'admin' WHERE correlation_id = $1 AND chain_seq = 2`)},
		{"the middle event deleted", integrity.BreakGap, 4,
			at(`DELETE FROM audit_events WHERE correlation_id = $1 AND chain_seq = 3`)},
		{"an event forged with a recomputed hash but no key", integrity.BreakAltered, 6, forge},
		{"two chain_seq swapped", integrity.BreakLink, 2,
			at(`UPDATE audit_events SET chain_seq = CASE chain_seq WHEN 2 THEN 3 ELSE 2 END WHERE correlation_id = $1 AND chain_seq IN (2, 3)`)},
		{"the end cut behind the checkpoint", integrity.BreakCut, ChainLength, cut},
		{"the chain recomputed with the right key after the checkpoint", integrity.BreakCheckpoint, ChainLength, Rewrite},
	}
}

// cut deletes the events after chain_seq 3 and moves the head back to it,
// as someone covering the deletion would.
func cut(ctx context.Context, pool *pgxpool.Pool, _ *integrity.Keys, corr string) error {
	if err := Exec(ctx, pool, `DELETE FROM audit_events WHERE correlation_id = $1 AND chain_seq > 3`, corr); err != nil {
		return err
	}
	return Exec(ctx, pool, `UPDATE chain_heads h SET chain_seq = 3, event_hash = e.event_hash FROM audit_events e
		WHERE h.correlation_id = $1 AND e.correlation_id = $1 AND e.chain_seq = 3`, corr)
}

// forge appends an event linked to the chain's head with a key of the
// forger's own: the right chain_seq and previous_event_hash, a hash that
// no key of the chain gives.
func forge(ctx context.Context, pool *pgxpool.Pool, keys *integrity.Keys, corr string) error {
	var head integrity.Head
	if err := pool.QueryRow(ctx, `SELECT chain_seq, event_hash FROM audit_events WHERE correlation_id = $1 ORDER BY chain_seq DESC LIMIT 1`,
		corr).Scan(&head.Seq, &head.Hash); err != nil {
		return err
	}
	own, err := keyring.NewKey(keys.SigningKeyID())
	if err != nil {
		return err
	}
	ring, err := keyring.Parse(keyring.Marshal(own), "")
	if err != nil {
		return err
	}
	e := Events(corr, 1)[0]
	if _, err := integrity.NewKeys(ring).Linker().Link(&e, head); err != nil {
		return err
	}
	return insert(ctx, pool, &e)
}

func insert(ctx context.Context, pool *pgxpool.Pool, e *audit.Event) error {
	return Exec(ctx, pool, `INSERT INTO audit_events (event_id, event_timestamp, version, event_type, event_category, event_action,
		event_outcome, correlation_id, event_data, namespace, submitted_by, chain_seq, previous_event_hash, event_hash, hash_key_id, hash_version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		e.EventID, e.EventTimestamp, e.Version, e.EventType, e.EventCategory, e.EventAction, e.EventOutcome, e.CorrelationID,
		[]byte(e.EventData), e.Namespace, e.SubmittedBy, e.ChainSeq, e.PreviousEventHash, e.EventHash, e.HashKeyID, e.HashVersion)
}

// Rewrite changes the second event of the chain and links it and every
// event after it again with the chain's own key, the head included: a
// chain consistent in every hash, which only a checkpoint published
// before contradicts.
func Rewrite(ctx context.Context, pool *pgxpool.Pool, keys *integrity.Keys, corr string) error {
	rows, err := pool.Query(ctx, `SELECT event_id, event_timestamp, version, event_type, event_category, event_action, event_outcome,
		event_data, namespace, submitted_by, chain_seq, previous_event_hash FROM audit_events WHERE correlation_id = $1 ORDER BY chain_seq`, corr)
	if err != nil {
		return err
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.Event, error) {
		e := audit.Event{CorrelationID: corr}
		var data []byte
		err := row.Scan((*[16]byte)(&e.EventID), &e.EventTimestamp, &e.Version, &e.EventType, &e.EventCategory, &e.EventAction,
			&e.EventOutcome, &data, &e.Namespace, &e.SubmittedBy, &e.ChainSeq, &e.PreviousEventHash)
		e.EventData, e.EventTimestamp = data, e.EventTimestamp.UTC()
		return e, err
	})
	if err != nil {
		return err
	}
	if len(events) < 2 {
		return fmt.Errorf("chain %q has %d events", corr, len(events))
	}
	events[1].EventData = json.RawMessage(`{"amount": 1, "currency": "EUR", "step": {"n": 1}}`)
	head := integrity.Head{Seq: 1}
	if err := pool.QueryRow(ctx, `SELECT event_hash FROM audit_events WHERE correlation_id = $1 AND chain_seq = 1`, corr).Scan(&head.Hash); err != nil {
		return err
	}
	l := keys.Linker()
	for i := 1; i < len(events); i++ {
		if head, err = l.Link(&events[i], head); err != nil {
			return err
		}
		e := &events[i]
		if err := Exec(ctx, pool, `UPDATE audit_events SET event_data = $2, previous_event_hash = $3, event_hash = $4, hash_key_id = $5
			WHERE event_id = $1`, e.EventID, []byte(e.EventData), e.PreviousEventHash, e.EventHash, e.HashKeyID); err != nil {
			return err
		}
	}
	return Exec(ctx, pool, `UPDATE chain_heads SET event_hash = $2 WHERE correlation_id = $1`, corr, head.Hash)
}

// RecordRetention records, as a retention run does, that retention dropped
// a partition holding events events of the chain corr with chain_seq from
// minSeq to maxSeq, without dropping one: for the cases a real drop makes
// hard to arrange (several drops of one chain).
func RecordRetention(ctx context.Context, pool *pgxpool.Pool, corr string, minSeq, maxSeq, events int64) error {
	return Exec(ctx, pool, `WITH d AS (
		INSERT INTO retention_drops (partition, period_start, period_end, events, default_days, event_id)
		VALUES ('audit_events_p201901', now(), now(), $4, 30, $5) RETURNING id)
	INSERT INTO retention_dropped_chains SELECT $1, id, $4, now(), now(), $2, $3 FROM d`, corr, minSeq, maxSeq, events, uuid.New())
}

// Checkpoint records signed checkpoints of every pending chain head, as the
// writer's loop does (without publishing them), and returns them.
func Checkpoint(ctx context.Context, s *store.Store, signer *integrity.Signer) ([]*integrity.SignedCheckpoint, error) {
	var all []*integrity.SignedCheckpoint
	for {
		cps, err := s.RecordCheckpoints(ctx, 100000, func(prev store.PreviousCheckpoint, heads []integrity.CheckpointHead) ([]*integrity.SignedCheckpoint, error) {
			return integrity.SignCheckpoints(signer, "verifytest", time.Now(), prev.ID, prev.Hash, heads)
		})
		if err != nil || len(cps) == 0 {
			return all, err
		}
		all = append(all, cps...)
	}
}
