package main

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/identity"
	"github.com/kiln-cdp/kiln/ingest/bulk"
	"github.com/kiln-cdp/kiln/journal"
	"github.com/kiln-cdp/kiln/store"
)

const importUsage = `Usage: kiln import -file PATH (-preset NAME | -mapping FILE.json | -field target=column ...) [-source NAME]

Imports a CSV, TSV, whitespace-separated or NDJSON file (gzipped or not)
straight into the database; a running server picks the events up within a
second. An interrupted import resumes where it stopped when run again with
the same file; events are never stored twice. Every rejected row is
reported with its line number and reason, and kept in the rejects log.

Presets: %s`

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg Config
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, importUsage+"\n\nFlags:\n", strings.Join(bulk.PresetNames(), ", "))
		fs.PrintDefaults()
	}
	cfg.storeFlags(fs)
	file := fs.String("file", "", "the file to import (.gz is detected)")
	preset := fs.String("preset", "", "a ready mapping: "+strings.Join(bulk.PresetNames(), ", "))
	mappingFile := fs.String("mapping", "", "a JSON mapping file (see docs/IMPORT.md)")
	var fields multiFlag
	fs.Var(&fields, "field", "a field mapping target=column[:type], e.g. userId=CustomerID (repeatable; adds to the mapping)")
	eventName := fs.String("event", "", `a constant event name for every row, e.g. "Order Completed" (overrides the mapping's)`)
	source := fs.String("source", "import", "the source the events are recorded under (created if missing)")
	report := fs.String("report", "", "write every rejected row to this CSV file (line, field, reason)")
	restart := fs.Bool("restart", false, "ignore a saved checkpoint and read the file from the start (stored events still dedupe)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		fs.Usage()
		return fmt.Errorf("import: -file is required")
	}
	m, err := importMapping(*preset, *mappingFile, fields)
	if err != nil {
		return err
	}
	if *eventName != "" {
		m.Event = *eventName
	}
	fid, size, err := fileIdentity(*file)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}

	st, err := cfg.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	src, err := st.GetSource(ctx, *source)
	if store.IsNotFound(err) {
		src, err = api.CreateSource(ctx, st, *source, "import", "", "", time.Now())
	}
	if err != nil {
		return fmt.Errorf("import: source %q: %w", *source, err)
	}

	cpName := "import:" + fid
	start := int64(0)
	if !*restart {
		if start, err = st.GetCheckpoint(ctx, cpName); err != nil {
			return err
		}
		if start > 0 {
			fmt.Fprintf(stderr, "resuming after line %d (from an earlier run; -restart to read it all again)\n", start)
		}
	}

	var rep *csv.Writer
	if *report != "" {
		f, err := os.Create(*report)
		if err != nil {
			return err
		}
		defer f.Close()
		rep = csv.NewWriter(f)
		rep.Write([]string{"line", "field", "reason"})
		defer rep.Flush()
	}
	shown := 0
	j := journal.New(st, journal.Options{})
	defer j.Close()
	began := time.Now()
	res, err := bulk.ImportFile(ctx, *file, j, bulk.Options{
		Mapping:        m,
		Identity:       identityRules(),
		SourceID:       src.ID,
		FileID:         fid,
		Size:           size,
		StartAfterLine: int(start),
		Checkpoint: func(line int) error {
			return st.SetCheckpoint(ctx, store.Checkpoint{Name: cpName, Seq: int64(line)})
		},
		OnReject: func(r kiln.Reject) {
			if rep != nil {
				rep.Write([]string{strconv.Itoa(r.Index), r.Field, r.Reason})
			}
			if shown < 20 {
				fmt.Fprintf(stderr, "\rline %d: %s%s\n", r.Index, fieldPrefix(r.Field), r.Reason)
			} else if shown == 20 {
				fmt.Fprintf(stderr, "\r(more rejected rows: see -report or kiln rejects -source %s)\n", src.Name)
			}
			shown++
		},
		Progress: func(p bulk.Progress) {
			if !*quiet {
				fmt.Fprint(stderr, "\r"+progressLine(p, began))
			}
		},
	})
	if !*quiet {
		fmt.Fprintln(stderr)
	}
	if kiln.ErrorCode(err) == kiln.EInvalid {
		// The store refused a row's data (rows are checked first, so this
		// is a gap in the checks): running again would stop here again.
		return fmt.Errorf("import stopped after line %d: %w", res.LastLine, err)
	}
	if err != nil {
		return fmt.Errorf("import stopped after line %d (run the same command again to resume): %w", res.LastLine, err)
	}
	fmt.Fprintf(stdout, "imported %s: %d lines, %d events (%d new), %d rejected, in %s\n",
		*file, res.Lines, res.Events, res.New, res.Rejects, time.Since(began).Round(time.Millisecond))
	return nil
}

func fieldPrefix(f string) string {
	if f == "" {
		return ""
	}
	return f + ": "
}

func progressLine(p bulk.Progress, began time.Time) string {
	rate := float64(p.Events) / max(time.Since(began).Seconds(), 0.001)
	if p.BytesTotal > 0 {
		frac := min(1, float64(p.BytesRead)/float64(p.BytesTotal))
		const width = 30
		done := int(frac * width)
		return fmt.Sprintf("[%s%s] %3.0f%%  %d lines  %d events  %d rejected  %.0f events/s ",
			strings.Repeat("=", done), strings.Repeat(" ", width-done), frac*100, p.Lines, p.Events, p.Rejects, rate)
	}
	return fmt.Sprintf("%d lines  %d events  %d rejected  %.0f events/s ", p.Lines, p.Events, p.Rejects, rate)
}

func importMapping(preset, file string, fields []string) (bulk.Mapping, error) {
	var m bulk.Mapping
	var err error
	switch {
	case preset != "" && file != "":
		return m, fmt.Errorf("import: give -preset or -mapping, not both")
	case preset != "":
		if m, err = bulk.Preset(preset); err != nil {
			return m, err
		}
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return m, err
		}
		if m, err = bulk.ParseMapping(data); err != nil {
			return m, fmt.Errorf("mapping %s: %w", file, err)
		}
	}
	for _, f := range fields {
		target, col, err := bulk.ParseField(f)
		if err != nil {
			return m, fmt.Errorf("-field %q: %w", f, err)
		}
		if m.Fields == nil {
			m.Fields = map[string]string{}
		}
		m.Fields[target] = col
	}
	if len(m.Fields) == 0 && m.Format != bulk.FormatSegment {
		return m, fmt.Errorf("import: say how columns map to events: -preset, -mapping or -field (or a mapping with \"format\": \"segment\" for a Segment or RudderStack export)")
	}
	return m, nil
}

// fileIdentity is a hash of the file's first 64 KiB and its size: the same
// file resumes under any name, and a different file never picks up its
// checkpoint.
func fileIdentity(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, 64<<10); err != nil && err != io.EOF {
		return "", 0, err
	}
	fmt.Fprintf(h, "|%d", st.Size())
	return hex.EncodeToString(h.Sum(nil))[:24], st.Size(), nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// identityRules are the default identifier rules, as the server uses them
// unless configured otherwise (KILN_PHONE_COUNTRY_CODE, KILN_IDENTITY_BLOCKLIST).
func identityRules() *identity.Extractor {
	var c Config
	c.PhoneCountryCode = envOr("KILN_PHONE_COUNTRY_CODE", "1")
	c.IdentityBlocklist = envOr("KILN_IDENTITY_BLOCKLIST", "")
	x, err := identity.NewExtractor(identity.Rules{CountryCode: c.PhoneCountryCode, BlockedValues: append(slices.Clone(identity.DefaultBlockedValues), c.blocklist()...)})
	if err != nil {
		return nil // bulk falls back to the default rules; serve reports the bad setting
	}
	return x
}
