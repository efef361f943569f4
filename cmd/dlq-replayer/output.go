package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/auditstream/auditstream/internal/dlq"
)

// printer writes records as an aligned table for people or as one JSON
// object per line for scripts.
type printer struct {
	json   bool
	enc    *json.Encoder
	tw     *tabwriter.Writer
	header bool
}

func newPrinter(out io.Writer, asJSON bool) *printer {
	p := &printer{json: asJSON}
	if asJSON {
		p.enc = json.NewEncoder(out)
	} else {
		p.tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	}
	return p
}

// recordJSON is the --json form of a record.
type recordJSON struct {
	Action            string    `json:"action,omitempty"`
	To                string    `json:"to,omitempty"`
	Topic             string    `json:"topic"`
	Partition         int32     `json:"partition"`
	Offset            int64     `json:"offset"`
	Timestamp         time.Time `json:"timestamp"`
	Key               string    `json:"key"`
	ErrorClass        string    `json:"error_class"`
	Error             string    `json:"error"`
	Attempts          int       `json:"attempts"`
	OriginalTopic     string    `json:"original_topic"`
	OriginalPartition int32     `json:"original_partition"`
	OriginalOffset    int64     `json:"original_offset"`
	FirstFailedAt     time.Time `json:"first_failed_at"`
	FailedAt          time.Time `json:"failed_at"`
	AgeSeconds        float64   `json:"age_seconds"`
	ValuePreview      string    `json:"value_preview"`
}

func toJSON(r dlq.Record, now time.Time) recordJSON {
	l := r.Letter
	return recordJSON{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC(),
		Key: string(r.Key), ErrorClass: string(l.Class), Error: l.Error, Attempts: l.Attempts,
		OriginalTopic: l.OriginalTopic, OriginalPartition: l.OriginalPartition, OriginalOffset: l.OriginalOffset,
		FirstFailedAt: l.FirstFailedAt, FailedAt: l.FailedAt, AgeSeconds: age(l, now).Seconds(),
		ValuePreview: preview(r.Value, 200),
	}
}

func (p *printer) record(r dlq.Record, now time.Time) { p.row("", "", r, now) }

func (p *printer) decision(d dlq.Decision, now time.Time) {
	p.row(string(d.Action), d.To, d.Record, now)
}

func (p *printer) row(action, to string, r dlq.Record, now time.Time) {
	if p.json {
		j := toJSON(r, now)
		j.Action, j.To = action, to
		_ = p.enc.Encode(j)
		return
	}
	if !p.header {
		p.header = true
		if action != "" {
			fmt.Fprint(p.tw, "ACTION\tTO\t")
		}
		fmt.Fprintln(p.tw, "P\tOFFSET\tCLASS\tATTEMPTS\tAGE\tORIGIN\tKEY\tREASON\tVALUE")
	}
	if action != "" {
		fmt.Fprintf(p.tw, "%s\t%s\t", action, to)
	}
	l := r.Letter
	fmt.Fprintf(p.tw, "%d\t%d\t%s\t%d\t%s\t%s/%d@%d\t%s\t%s\t%s\n",
		r.Partition, r.Offset, l.Class, l.Attempts, age(l, now).Truncate(time.Second),
		l.OriginalTopic, l.OriginalPartition, l.OriginalOffset,
		preview(r.Key, 30), preview([]byte(l.Error), 60), preview(r.Value, 40))
}

func (p *printer) flush() {
	if p.tw != nil {
		_ = p.tw.Flush()
	}
}

// inspect prints every header and the whole value of one record.
func inspect(out io.Writer, r dlq.Record, now time.Time, asJSON bool) error {
	if asJSON {
		type full struct {
			recordJSON
			Headers map[string]string `json:"headers"`
			Value   string            `json:"value"`
		}
		f := full{recordJSON: toJSON(r, now), Headers: map[string]string{}, Value: string(r.Value)}
		for _, h := range r.Headers {
			f.Headers[string(h.Key)] = string(h.Value)
		}
		return json.NewEncoder(out).Encode(f)
	}
	l := r.Letter
	fmt.Fprintf(out, "record       %s/%d@%d (written %s)\n", r.Topic, r.Partition, r.Offset, r.Timestamp.UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "origin       %s/%d@%d\n", l.OriginalTopic, l.OriginalPartition, l.OriginalOffset)
	fmt.Fprintf(out, "class        %s\n", l.Class)
	fmt.Fprintf(out, "reason       %s\n", l.Error)
	fmt.Fprintf(out, "attempts     %d\n", l.Attempts)
	fmt.Fprintf(out, "failed       first %s, last %s (%s ago)\n", l.FirstFailedAt.Format(time.RFC3339), l.FailedAt.Format(time.RFC3339), age(l, now).Truncate(time.Second))
	fmt.Fprintf(out, "key          %s\n", r.Key)
	fmt.Fprintln(out, "headers")
	for _, h := range r.Headers {
		fmt.Fprintf(out, "  %s: %s\n", h.Key, h.Value)
	}
	fmt.Fprintln(out, "value")
	var pretty bytes.Buffer
	if json.Indent(&pretty, r.Value, "  ", "  ") == nil {
		fmt.Fprintf(out, "  %s\n", pretty.String())
	} else {
		fmt.Fprintf(out, "  %q\n", r.Value)
	}
	return nil
}

func age(l dlq.Letter, now time.Time) time.Duration {
	if l.FailedAt.IsZero() {
		return 0
	}
	return now.Sub(l.FailedAt)
}

// preview shortens b to n characters on one line, for tables.
func preview(b []byte, n int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
