package testenv

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTLSPostgres: the TLS-only server takes verify-full connections, and
// still does after a restart; it refuses plaintext TCP, and verify-full
// against another CA fails on the certificate.
func TestTLSPostgres(t *testing.T) {
	pg := NewTLSPostgres(t)
	other := NewTLSPostgres(t)
	ctx := t.Context()

	query := func(dsn string) (string, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return "", err
		}
		defer conn.Close(context.Background())
		var ssl string
		err = conn.QueryRow(ctx, `SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl)
		return ssl, err
	}
	withParams := func(dsn string, params map[string]string) string {
		u, err := url.Parse(dsn)
		require.NoError(t, err)
		q := u.Query()
		for k, v := range params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}

	require.Contains(t, pg.URL(), "sslmode=verify-full")
	ssl, err := query(pg.URL())
	require.NoError(t, err)
	require.Equal(t, "true", ssl)

	_, err = query(withParams(pg.URL(), map[string]string{"sslmode": "disable"}))
	require.ErrorContains(t, err, "no encryption")
	require.ErrorContains(t, err, "SQLSTATE 28000")

	otherCA, err := url.Parse(other.URL())
	require.NoError(t, err)
	_, err = query(withParams(pg.URL(), map[string]string{"sslrootcert": otherCA.Query().Get("sslrootcert")}))
	require.ErrorContains(t, err, "certificate signed by unknown authority")

	require.NoError(t, pg.Stop(ctx))
	require.NoError(t, pg.Start(ctx))
	ssl, err = query(pg.URL())
	require.NoError(t, err)
	require.Equal(t, "true", ssl, "TLS survives a restart")
}

// TestSecureKafka: the harness's clients reach the TLS+SASL broker with
// the credentials it hands out, a client without them does not, and Env
// names every setting a binary needs.
func TestSecureKafka(t *testing.T) {
	k := NewSecureKafka(t, map[string]int32{"t": 1}, "SCRAM-SHA-256", true)
	cl, err := k.NewClient(kgo.DefaultProduceTopic("t"))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.ProduceSync(t.Context(), &kgo.Record{Value: []byte("v")}).FirstErr())
	recs, err := k.ConsumeAll(t.Context(), "t", 1)
	require.NoError(t, err)
	require.Equal(t, "v", string(recs[0].Value))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err = ConsumeAll(ctx, k.Brokers(), "t", 1)
	require.Error(t, err, "a plaintext client reads nothing")

	c := k.Credentials()
	require.ElementsMatch(t, []string{
		"KAFKA_BROKERS=" + k.Brokers()[0], "KAFKA_TLS_ENABLED=true", "KAFKA_TLS_CA_FILE=" + c.CAFile,
		"KAFKA_TLS_CERT_FILE=" + c.Client.CertFile, "KAFKA_TLS_KEY_FILE=" + c.Client.KeyFile,
		"KAFKA_SASL_MECHANISM=SCRAM-SHA-256", "KAFKA_SASL_USERNAME=" + c.Username, "KAFKA_SASL_PASSWORD=" + c.Password,
	}, k.Env())
	plain := NewKafka(t, nil)
	require.Equal(t, []string{"KAFKA_BROKERS=" + strings.Join(plain.Brokers(), ",")}, plain.Env())
	require.Nil(t, plain.Credentials())
}
