package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/errclass"
)

func TestClassify(t *testing.T) {
	pgErr := func(code string) error { return &pgconn.PgError{Code: code, Message: "irrelevant"} }
	cases := []struct {
		name string
		err  error
		want errclass.Class
	}{
		{"nil", nil, errclass.None},

		// Outage: the database, not the rows.
		{"connection failure 08006", pgErr("08006"), errclass.Outage},
		{"connection does not exist 08003", pgErr("08003"), errclass.Outage},
		{"too many connections 53300", pgErr("53300"), errclass.Outage},
		{"disk full 53100", pgErr("53100"), errclass.Outage},
		{"out of memory 53200", pgErr("53200"), errclass.Outage},
		{"admin shutdown 57P01", pgErr("57P01"), errclass.Outage},
		{"crash shutdown 57P02", pgErr("57P02"), errclass.Outage},
		{"cannot connect now 57P03", pgErr("57P03"), errclass.Outage},
		{"statement timeout 57014", pgErr("57014"), errclass.Outage},
		{"serialization failure 40001", pgErr("40001"), errclass.Outage},
		{"deadlock 40P01", pgErr("40P01"), errclass.Outage},
		{"read-only transaction (failover) 25006", pgErr("25006"), errclass.Outage},
		{"lock timeout 55P03", pgErr("55P03"), errclass.Outage},
		{"io error 58030", pgErr("58030"), errclass.Outage},
		{"password failed 28P01", pgErr("28P01"), errclass.Outage},
		{"database missing 3D000", pgErr("3D000"), errclass.Outage},
		{"context deadline", context.DeadlineExceeded, errclass.Outage},
		{"context canceled", fmt.Errorf("copy: %w", context.Canceled), errclass.Outage},
		{"network", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, errclass.Outage},
		{"eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), errclass.Outage},
		{"conn closed", pgconn.ErrConnClosed, errclass.Outage},
		{"unrecognised client error", errors.New("something"), errclass.Outage},

		// Failed: may clear without changing the rows.
		{"no partition / check 23514", pgErr("23514"), errclass.Failed},
		{"foreign key 23503", pgErr("23503"), errclass.Failed},
		{"undefined table 42P01", pgErr("42P01"), errclass.Outage},
		{"undefined column 42703", pgErr("42703"), errclass.Outage},
		{"insufficient privilege 42501", pgErr("42501"), errclass.Outage},
		{"deferred constraint at commit 40002", pgErr("40002"), errclass.Failed},
		{"internal error XX000", pgErr("XX000"), errclass.Failed},
		{"unknown class", pgErr("ZZ999"), errclass.Failed},

		// Poison: this row, as it is, never fits.
		{"string too long 22001", pgErr("22001"), errclass.Poison},
		{"invalid text 22P02", pgErr("22P02"), errclass.Poison},
		{"untranslatable character 22P05", pgErr("22P05"), errclass.Poison},
		{"invalid json 22P02", pgErr("22P02"), errclass.Poison},
		{"numeric out of range 22003", pgErr("22003"), errclass.Poison},
		{"not null 23502", pgErr("23502"), errclass.Poison},
		{"unique (other key) 23505", pgErr("23505"), errclass.Poison},
		{"index row too large 54000", pgErr("54000"), errclass.Poison},

		// Wrapping keeps the class; a connect error is an outage whatever its code.
		{"wrapped", fmt.Errorf("flush: %w", fmt.Errorf("copy: %w", pgErr("22001"))), errclass.Poison},
		{"joined", errors.Join(errors.New("rollback failed"), pgErr("23502")), errclass.Poison},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Classify(tc.err))
		})
	}
}

// TestLostChainRace: a batch is written again with its heads locked when
// another writer moved a head first, or when PostgreSQL broke a deadlock
// between the two by aborting this one; any other error is classified as
// it comes.
func TestLostChainRace(t *testing.T) {
	pgErr := func(code string) error { return &pgconn.PgError{Code: code, Message: "irrelevant"} }
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"moved first", fmt.Errorf("write batch: %w", errChainRace), true},
		{"deadlock", fmt.Errorf("write batch: move chain heads: %w", pgErr("40P01")), true},
		{"serialization failure", pgErr("40001"), false},
		{"unique violation", pgErr("23505"), false},
		{"connection lost", io.ErrUnexpectedEOF, false},
		{"none", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, lostChainRace(tt.err))
		})
	}
}
