package integrity_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/integrity"
)

// canonicalCases are JSON texts and their canonical form. Each is also
// sent through a real jsonb (TestCanonicalJSONSurvivesJSONB).
var canonicalCases = []struct {
	name, in, want string
}{
	{"empty object", `{}`, `{}`},
	{"whitespace", " { \"a\" :\t[ 1 ,\n2 ] }\r\n", `{"a":[1,2]}`},
	{"keys sorted bytewise, not by length as jsonb stores them", `{"bb":1,"a":2,"ccc":3,"é":4,"z":5,"Z":6}`,
		`{"Z":6,"a":2,"bb":1,"ccc":3,"z":5,"é":4}`},
	{"empty key", `{"":1,"a":{"":[]}}`, `{"":1,"a":{"":[]}}`},
	{"duplicate key: last wins", `{"a":1,"b":0,"a":2}`, `{"a":2,"b":0}`},
	{"duplicate key with a nested value", `{"x":{"k":1,"k":{"z":1,"y":[1]}},"x":{"k":3}}`, `{"x":{"k":3}}`},
	{"keys equal once unescaped are duplicates", `{"\u0061":1,"a":2}`, `{"a":2}`},
	{"unicode escapes become UTF-8", `{"s":"\u00e9\u4e2d\ud83d\ude00é"}`, `{"s":"é中😀é"}`},
	{"plain runs around escapes and UTF-8", `{"plain":"abc","ké":"xy\u00e9z é\tq","k\"q":"a\"","\\":"\\b"}`,
		`{"\\":"\\b","k\"q":"a\"","ké":"xyéz é\tq","plain":"abc"}`},
	{"escaped solidus", `{"s":"a\/b","\/":1}`, `{"/":1,"s":"a/b"}`},
	{"control characters", `{"s":"\u0001\b\f\n\r\t\u001f\u007f\u0020"}`, `{"s":"\u0001\b\f\n\r\t\u001f` + "\x7f" + ` "}`},
	{"quote and backslash", `{"s":"\"\\\u005c\u0022"}`, `{"s":"\"\\\\\""}`},
	{"line separators stay raw", `{"s":"\u2028\u2029"}`, "{\"s\":\"\u2028\u2029\"}"},
	{"big integer, exact", `{"n":123456789012345678901234567890}`, `{"n":12345678901234567890123456789e1}`},
	{"beyond float64 precision", `{"n":9007199254740993}`, `{"n":9007199254740993}`},
	{"1e2 and 1E+2 and 100", `{"a":1e2,"b":1E+2,"c":100,"d":100.00}`, `{"a":1e2,"b":1e2,"c":1e2,"d":1e2}`},
	{"1.0 is 1", `{"a":1.0,"b":1,"c":10e-1}`, `{"a":1,"b":1,"c":1}`},
	{"0.10", `{"n":0.10}`, `{"n":1e-1}`},
	{"negative zero", `{"a":-0,"b":-0.0,"c":0e10,"d":0.000}`, `{"a":0,"b":0,"c":0,"d":0}`},
	{"small numbers", `{"a":1e-7,"b":0.000001,"c":-1.5e-300,"d":12.3400e3}`, `{"a":1e-7,"b":1e-6,"c":-15e-301,"d":1234e1}`},
	{"huge and tiny", `{"a":1e400,"b":-2.5E-400}`, `{"a":1e400,"b":-25e-401}`},
	{"fractions", `{"a":-12.5,"b":3.14159,"c":0.5}`, `{"a":-125e-1,"b":314159e-5,"c":5e-1}`},
	{"arrays keep their order", `{"a":[3,1,[2,[{"z":1,"y":2},[]]],"x",null,true,false]}`,
		`{"a":[3,1,[2,[{"y":2,"z":1},[]]],"x",null,true,false]}`},
	{"literals", `{"t":true,"f":false,"n":null}`, `{"f":false,"n":null,"t":true}`},
	{"deep nesting", `{"a":` + strings.Repeat(`[`, 1000) + `{"b":1}` + strings.Repeat(`]`, 1000) + `}`,
		`{"a":` + strings.Repeat(`[`, 1000) + `{"b":1}` + strings.Repeat(`]`, 1000) + `}`},
}

func TestCanonicalJSON(t *testing.T) {
	for _, tc := range canonicalCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := integrity.AppendCanonicalJSON([]byte("prefix:"), []byte(tc.in))
			require.NoError(t, err)
			require.Equal(t, "prefix:"+tc.want, string(got))
			again, err := integrity.AppendCanonicalJSON(nil, got[len("prefix:"):])
			require.NoError(t, err)
			require.Equal(t, tc.want, string(again), "canonical JSON is its own canonical form")
		})
	}
}

// TestCanonicalJSONSurvivesJSONB: what PostgreSQL's jsonb returns for a
// text has the canonical form of the text itself, read both as the
// database's text output and as pgx decodes the column (binary), so the
// writer (holding the client's JSON) and a verifier (reading the column)
// compute the same bytes.
func TestCanonicalJSONSurvivesJSONB(t *testing.T) {
	conn, err := pgx.Connect(t.Context(), pg.URL())
	require.NoError(t, err)
	defer conn.Close(t.Context())
	_, err = conn.Exec(t.Context(), `CREATE TEMP TABLE j (i int, v jsonb)`)
	require.NoError(t, err)
	rewritten := 0 // cases whose text jsonb does not return as it was given
	for i, tc := range canonicalCases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := integrity.AppendCanonicalJSON(nil, []byte(tc.in))
			require.NoError(t, err)
			// As the store sends it: the client's bytes as a jsonb parameter.
			_, err = conn.Exec(t.Context(), `INSERT INTO j VALUES ($1, $2::jsonb)`, i, []byte(tc.in))
			require.NoError(t, err)
			var text string
			var binary []byte
			require.NoError(t, conn.QueryRow(t.Context(), `SELECT v::text, v FROM j WHERE i = $1`, i).Scan(&text, &binary))
			if text != tc.in {
				rewritten++
			}
			for _, back := range []string{text, string(binary)} {
				got, err := integrity.AppendCanonicalJSON(nil, []byte(back))
				require.NoError(t, err, back)
				require.Equal(t, string(want), string(got), "jsonb returned %.200s", back)
			}
		})
	}
	require.Greater(t, rewritten, len(canonicalCases)/2, "the cases exercise jsonb's rewriting")
}

func TestCanonicalJSONRefuses(t *testing.T) {
	for _, in := range []string{
		``, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `{"a":1}x`, `{a:1}`, `{'a':1}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":+1}`, `{"a":1e}`, `{"a":1e+}`, `{"a":-}`, `{"a":NaN}`, `{"a":tru}`,
		`{"a":"\ud800"}`, `{"a":"\udc00\ud800"}`, `{"a":"\ud800\u0041"}`, `{"a":"\u0000"}`, `{"a":"\x"}`, `{"a":"\u12"}`,
		"{\"a\":\"\xff\"}", "{\"a\":\"\x01\"}", `{"a":"unterminated}`, `{"a":1e99999999999999999}`,
		strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001),
	} {
		_, err := integrity.AppendCanonicalJSON(nil, []byte(in))
		require.ErrorIs(t, err, integrity.ErrJSON, "%.60q", in)
	}
}
