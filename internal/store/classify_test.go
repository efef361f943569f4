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
)

func TestClassify(t *testing.T) {
	pgErr := func(code string) error { return &pgconn.PgError{Code: code, Message: "irrelevant"} }
	cases := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, None},

		// Outage: the database, not the rows.
		{"connection failure 08006", pgErr("08006"), Outage},
		{"connection does not exist 08003", pgErr("08003"), Outage},
		{"too many connections 53300", pgErr("53300"), Outage},
		{"disk full 53100", pgErr("53100"), Outage},
		{"out of memory 53200", pgErr("53200"), Outage},
		{"admin shutdown 57P01", pgErr("57P01"), Outage},
		{"crash shutdown 57P02", pgErr("57P02"), Outage},
		{"cannot connect now 57P03", pgErr("57P03"), Outage},
		{"statement timeout 57014", pgErr("57014"), Outage},
		{"serialization failure 40001", pgErr("40001"), Outage},
		{"deadlock 40P01", pgErr("40P01"), Outage},
		{"read-only transaction (failover) 25006", pgErr("25006"), Outage},
		{"lock timeout 55P03", pgErr("55P03"), Outage},
		{"io error 58030", pgErr("58030"), Outage},
		{"password failed 28P01", pgErr("28P01"), Outage},
		{"database missing 3D000", pgErr("3D000"), Outage},
		{"context deadline", context.DeadlineExceeded, Outage},
		{"context canceled", fmt.Errorf("copy: %w", context.Canceled), Outage},
		{"network", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, Outage},
		{"eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), Outage},
		{"conn closed", pgconn.ErrConnClosed, Outage},
		{"unrecognised client error", errors.New("something"), Outage},

		// Failed: may clear without changing the rows.
		{"no partition / check 23514", pgErr("23514"), Failed},
		{"foreign key 23503", pgErr("23503"), Failed},
		{"undefined table 42P01", pgErr("42P01"), Outage},
		{"undefined column 42703", pgErr("42703"), Outage},
		{"insufficient privilege 42501", pgErr("42501"), Outage},
		{"deferred constraint at commit 40002", pgErr("40002"), Failed},
		{"internal error XX000", pgErr("XX000"), Failed},
		{"unknown class", pgErr("ZZ999"), Failed},

		// Poison: this row, as it is, never fits.
		{"string too long 22001", pgErr("22001"), Poison},
		{"invalid text 22P02", pgErr("22P02"), Poison},
		{"untranslatable character 22P05", pgErr("22P05"), Poison},
		{"invalid json 22P02", pgErr("22P02"), Poison},
		{"numeric out of range 22003", pgErr("22003"), Poison},
		{"not null 23502", pgErr("23502"), Poison},
		{"unique (other key) 23505", pgErr("23505"), Poison},
		{"index row too large 54000", pgErr("54000"), Poison},

		// Wrapping keeps the class; a connect error is an outage whatever its code.
		{"wrapped", fmt.Errorf("flush: %w", fmt.Errorf("copy: %w", pgErr("22001"))), Poison},
		{"joined", errors.Join(errors.New("rollback failed"), pgErr("23502")), Poison},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Classify(tc.err))
		})
	}
}

func TestClassString(t *testing.T) {
	require.Equal(t, "outage", Outage.String())
	require.Equal(t, "failed", Failed.String())
	require.Equal(t, "poison", Poison.String())
	require.Equal(t, "none", None.String())
}
