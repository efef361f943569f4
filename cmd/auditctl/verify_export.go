package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/integrity"
)

// maxExportBreaks bounds the chain breaks verify-export lists; the rest
// are counted.
const maxExportBreaks = 100

func runVerifyExport(c config.AuditctlVerifyExport, stdin io.Reader, out, progress io.Writer) error {
	pub, err := integrity.LoadPublicKeys(c.PublicKeys...)
	if err != nil {
		return err
	}
	var keys *integrity.Keys
	if c.IntegrityKeysFile != "" {
		if keys, err = integrity.LoadKeys(c.IntegrityKeysFile); err != nil {
			return err
		}
	}
	in := stdin
	var size int64 = -1
	if c.File != "-" {
		f, err := os.Open(c.File)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in = f
	}
	r, err := integrity.VerifyExport(&progressReader{r: in, size: size, out: progress, last: time.Now()}, pub, keys, maxExportBreaks)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.File, err)
	}
	if err := printExportReport(out, c.JSON, r); err != nil {
		return err
	}
	if !r.Valid() {
		return errNotVerified
	}
	return nil
}

// progressReader reports on stderr how much of a long file was read.
type progressReader struct {
	r    io.Reader
	size int64
	n    int64
	out  io.Writer
	last time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if time.Since(p.last) >= progressEvery {
		p.last = time.Now()
		if p.size > 0 {
			fmt.Fprintf(p.out, "… %d of %d MiB read (%d%%)\n", p.n>>20, p.size>>20, p.n*100/p.size)
		} else {
			fmt.Fprintf(p.out, "… %d MiB read\n", p.n>>20)
		}
	}
	return n, err
}

func printExportReport(out io.Writer, asJSON bool, r *integrity.ExportReport) error {
	if asJSON {
		return json.NewEncoder(out).Encode(struct {
			OK bool `json:"ok"`
			*integrity.ExportReport
		}{r.Valid(), r})
	}
	var b strings.Builder
	if m := r.Metadata; m != nil {
		fmt.Fprintf(&b, "export: %s, started %s by %s: %d event(s) in %d chain(s)\n", r.Format,
			m.ExportTimestamp.Format(time.RFC3339), m.ExportedBy, r.Events, r.Chains)
		fmt.Fprintf(&b, "signed by: %s key %s\n", m.SignatureAlgorithm, m.PublicKeySHA256)
	} else {
		fmt.Fprintf(&b, "export: %s, %d event(s) in %d chain(s) read; no signed metadata\n", r.Format, r.Events, r.Chains)
	}
	level := "links checked (previous_event_hash, chain_seq); no HMAC keys given, so a field changed with its hash left alone is not seen here"
	if r.Keyed {
		level = "every event's HMAC recomputed, and the links checked"
	}
	fmt.Fprintf(&b, "chains: %s; %d chain_seq value(s) not in this export, %d event(s) stored without a chain\n", level, r.Skipped, r.Unchained)
	if s := r.Server; s != nil {
		fmt.Fprintf(&b, "the service's signed check: %d of %d chained event(s) valid, %d broken\n",
			s.ValidChainEvents, s.TotalEventsVerified, s.BrokenChainEvents)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM %s: %s\n", p.Kind, p.Message)
	}
	for _, br := range r.Breaks {
		fmt.Fprintf(&b, "  BROKEN %s at chain_seq %d (%s): %s\n", br.CorrelationID, br.ChainSeq, br.Kind, br.Message)
	}
	if r.MoreBreaks > 0 {
		fmt.Fprintf(&b, "  ... and %d more break(s)\n", r.MoreBreaks)
	}
	if r.Valid() {
		b.WriteString("result: the export verifies\n")
	} else {
		b.WriteString("result: NOT VERIFIED\n")
	}
	_, err := io.WriteString(out, b.String())
	return err
}
