// Package bulk imports events from CSV, TSV, whitespace-separated and
// NDJSON files (plain or gzipped), mapped onto kiln.Event by a Mapping,
// and writes them to an ingest.Sink in batches. It streams: memory stays
// constant whatever the file size (one order's lines at most are held).
//
// # Resuming
//
// Every event's messageId is derived from the file's identity (a hash of
// its first 64 KiB, or Options.FileID) and the line it starts on, so
// importing the same file again stores nothing twice. (Segment archives,
// FormatSegment, keep their messages' own ids, or the ids the tracking API
// would derive, so events that also arrived live are stored once.) Options.Checkpoint is
// called after each durable write with the last line fully written; passing
// that line back as Options.StartAfterLine skips ahead instead of re-reading
// everything into the sink. Because ids depend on the file and not on the
// mapping, re-importing a file with a corrected mapping needs a new
// Options.FileID, or the store keeps the first version of each event.
//
// # Rejects
//
// A row that cannot become an event (a number that does not parse, no
// identifier, a bad date) is reported to Options.OnReject and written to the
// sink as a kiln.Reject with Origin "import:<file name>" and Index set to
// its line number; the import goes on. Rows of one order are rejected
// together when the order as a whole is unusable (no customer).
package bulk

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // presets name zones (Europe/London); machines may lack a zone database

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/identity"
	"github.com/kiln-cdp/kiln/ingest"
)

// DefaultBatchSize is how many events go to the sink per write.
const DefaultBatchSize = 1000

// progressLines is how often progress is reported between writes.
const progressLines = 50000

// Options configures one import.
type Options struct {
	Mapping  Mapping
	SourceID string
	// FileName names the file in rejects (Origin "import:<FileName>").
	FileName string
	// FileID identifies the file in messageIds; default: a hash of its
	// first 64 KiB, so the same file gives the same ids under any name.
	FileID string
	// Size is the file's size in bytes for progress (0: unknown).
	Size      int64
	BatchSize int
	// StartAfterLine skips lines up to and including this one (a
	// checkpoint from an interrupted run). The header is still read.
	StartAfterLine int
	// Progress is called after each batch and at the end.
	Progress func(Progress)
	// Checkpoint is called after each durable write with the last line
	// whose events and rejects are all written. An error stops the import.
	Checkpoint func(line int) error
	// OnReject is called for each rejected row or order as it is found.
	OnReject func(kiln.Reject)
	// Identity decides which values are identifiers when setting each
	// event's Anchor; it must be the resolver's (nil: the default rules).
	Identity *identity.Extractor
	// Now gives the receive time (default time.Now).
	Now func() time.Time
}

// Progress reports how far an import got.
type Progress struct {
	Lines      int   // lines read (including skipped ones)
	Events     int   // events written
	New        int   // of those, new to the store (not retries)
	Rejects    int   // rows or orders rejected
	BytesRead  int64 // of the file as stored (compressed if gzipped)
	BytesTotal int64 // Options.Size, 0 if unknown
}

// Result is the outcome of an import.
type Result struct {
	Progress
	// LastLine is the last line fully written: the checkpoint to resume from.
	LastLine int
}

// ImportFile imports the file at path, gzipped or not; FileName and Size
// default to the file's base name and size.
func ImportFile(ctx context.Context, path string, sink ingest.Sink, opts Options) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	if opts.FileName == "" {
		opts.FileName = filepath.Base(path)
	}
	if opts.Size == 0 {
		if st, err := f.Stat(); err == nil {
			opts.Size = st.Size()
		}
	}
	return Import(ctx, f, sink, opts)
}

// Import reads r (gzip is detected) and writes its events to sink.
func Import(ctx context.Context, r io.Reader, sink ingest.Sink, opts Options) (Result, error) {
	if err := opts.Mapping.Validate(); err != nil {
		return Result{}, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FileName == "" {
		opts.FileName = "stdin"
	}
	counter := &countingReader{r: r}
	br := bufio.NewReaderSize(counter, 64<<10)
	head, _ := br.Peek(64 << 10) // short files give less, with an error we do not need
	if opts.FileID == "" {
		sum := sha256.Sum256(head)
		opts.FileID = hex.EncodeToString(sum[:8])
	}
	var in io.Reader = br
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return Result{}, fmt.Errorf("%s: looks gzipped but is not: %v", opts.FileName, err)
		}
		defer zr.Close()
		in = zr
	}
	imp, err := newImporter(in, sink, opts, counter)
	if err != nil {
		return Result{}, err
	}
	return imp.run(ctx)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// record is one row of the file.
type record struct {
	line   int
	fields []string       // csv, tsv, whitespace
	obj    map[string]any // ndjson
	raw    []byte         // as read, for rejects
}

// rowReader yields records; io.EOF at the end. A *rowError is a bad row
// that the import reports and skips.
type rowReader interface {
	next() (record, error)
}

type rowError struct {
	line   int
	reason string
	raw    []byte
}

func (e *rowError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.reason) }

// csvReader reads csv and tsv.
type csvReader struct {
	r    *csv.Reader
	last int // line of the last record
}

func (c *csvReader) next() (record, error) {
	fields, err := c.r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			reason := fmt.Sprintf("%v (line %d, column %d)", pe.Err, pe.Line, pe.Column)
			if pe.Line > pe.StartLine {
				// A stray quote joins lines into one broken record: say which.
				reason = fmt.Sprintf("lines %d-%d are one broken record: %v (line %d, column %d)", pe.StartLine, pe.Line, pe.Err, pe.Line, pe.Column)
			}
			return record{}, &rowError{line: pe.StartLine, reason: reason}
		}
		return record{}, err
	}
	line, _ := c.r.FieldPos(0)
	c.last = line
	return record{line: line, fields: fields}, nil
}

// lineReader reads whitespace-separated and ndjson lines.
type lineReader struct {
	br      *bufio.Reader
	line    int
	ndjson  bool
	keepRaw bool // only the raw line is needed (segment)
}

const maxLine = 1 << 20

func (l *lineReader) next() (record, error) {
	for {
		b, err := l.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An over-long line: skip the rest of it and reject it.
			l.line++
			line := l.line
			start := append([]byte(nil), b[:min(len(b), 256)]...) // the buffer is reused below
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = l.br.ReadSlice('\n')
			}
			return record{}, &rowError{line: line, reason: fmt.Sprintf("line is longer than %d bytes", maxLine), raw: start}
		}
		if len(b) == 0 && err != nil {
			return record{}, err
		}
		l.line++
		text := bytes.TrimRight(b, "\r\n")
		if len(bytes.TrimSpace(text)) == 0 {
			if err != nil {
				return record{}, err
			}
			continue // blank lines are not rows
		}
		rec := record{line: l.line, raw: append([]byte(nil), text...)}
		switch {
		case l.keepRaw:
		case l.ndjson:
			if err := json.Unmarshal(text, &rec.obj); err != nil {
				return record{}, &rowError{line: l.line, reason: "not a JSON object: " + err.Error(), raw: rec.raw}
			}
		default:
			rec.fields = strings.Fields(string(text))
		}
		return rec, nil
	}
}

// field is one compiled Fields entry.
type field struct {
	target string // as in the mapping
	column string
	col    int // index for row formats, -1 for ndjson
	typ    valueType
}

type importer struct {
	opts    Options
	m       Mapping
	sink    ingest.Sink
	rows    rowReader
	counter *countingReader
	origin  string
	segment bool // FormatSegment
	loc     *time.Location
	evType  kiln.EventType

	fields   []field // event-level
	products []field // products[].*
	orderCol field
	tsField  *field

	// batch being built
	events  []kiln.Event
	rejects []kiln.Reject
	// open order group
	group      []record
	groupID    string
	lastLine   int // last line read
	doneLine   int // last line whose outcome is in events/rejects or written
	written    int // last line durably written
	res        Progress
	receivedAt time.Time
}

func newImporter(in io.Reader, sink ingest.Sink, opts Options, counter *countingReader) (*importer, error) {
	m := opts.Mapping
	imp := &importer{opts: opts, m: m, sink: sink, counter: counter, origin: "import:" + opts.FileName, loc: time.UTC, evType: kiln.Track}
	if m.Type != "" {
		imp.evType = kiln.EventType(m.Type)
	}
	if m.TimeZone != "" {
		loc, err := time.LoadLocation(m.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("mapping: timeZone %q: %v", m.TimeZone, err)
		}
		imp.loc = loc
	}
	format := m.Format
	if format == "" {
		format = FormatCSV
	}
	var columns []string
	switch format {
	case FormatCSV, FormatTSV:
		cr := csv.NewReader(in)
		cr.FieldsPerRecord = -1
		cr.ReuseRecord = false
		if format == FormatTSV {
			cr.Comma = '\t'
			cr.LazyQuotes = true
		}
		if m.Delimiter != "" {
			cr.Comma = []rune(m.Delimiter)[0]
		}
		imp.rows = &csvReader{r: cr}
		if m.Header == nil || *m.Header {
			hdr, err := cr.Read()
			if err != nil {
				return nil, fmt.Errorf("%s: reading the header line: %v", opts.FileName, err)
			}
			if len(hdr) > 0 {
				hdr[0] = strings.TrimPrefix(hdr[0], "\ufeff") // a BOM from spreadsheet exports
			}
			columns = hdr
			imp.lastLine = 1
		}
	case FormatSegment:
		imp.segment = true
		imp.rows = &lineReader{br: bufio.NewReaderSize(in, maxLine), keepRaw: true}
		return imp, nil
	case FormatWhitespace, FormatNDJSON:
		lr := &lineReader{br: bufio.NewReaderSize(in, maxLine), ndjson: format == FormatNDJSON}
		imp.rows = lr
		if format == FormatWhitespace && m.Header != nil && *m.Header {
			rec, err := lr.next()
			if err != nil {
				return nil, fmt.Errorf("%s: reading the header line: %v", opts.FileName, err)
			}
			columns = rec.fields
			imp.lastLine = rec.line
		}
	}
	if len(m.Columns) > 0 {
		columns = m.Columns
	}
	index := map[string]int{}
	for i, c := range columns {
		index[strings.TrimSpace(c)] = i
	}
	resolve := func(target, spec string) (field, error) {
		col, typ, typed := splitColumn(spec)
		f := field{target: target, column: col, col: -1, typ: typ}
		if format == FormatNDJSON {
			if !typed {
				f.typ = typeAuto
			}
			return f, nil
		}
		i, ok := index[col]
		if !ok {
			if len(columns) == 0 {
				return f, fmt.Errorf("mapping: %s: column %q, but the file has no header: set \"columns\" to name them", target, col)
			}
			return f, fmt.Errorf("mapping: %s: no column %q in %s (columns: %s)", target, col, opts.FileName, strings.Join(columns, ", "))
		}
		f.col = i
		return f, nil
	}
	targets := sortedKeys(m.Fields)
	for _, t := range targets {
		f, err := resolve(t, m.Fields[t])
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasPrefix(t, "products[]."):
			imp.products = append(imp.products, f)
		default:
			imp.fields = append(imp.fields, f)
		}
	}
	for i := range imp.fields {
		if imp.fields[i].target == "timestamp" {
			imp.tsField = &imp.fields[i]
		}
	}
	if m.Order != nil {
		f, err := resolve("order.idColumn", m.Order.IDColumn)
		if err != nil {
			return nil, err
		}
		imp.orderCol = f
	}
	return imp, nil
}

// sortedKeys gives map keys in a fixed order, so events are identical
// across runs.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func (imp *importer) run(ctx context.Context) (Result, error) {
	imp.receivedAt = imp.opts.Now().UTC()
	imp.res.BytesTotal = imp.opts.Size
	imp.doneLine = imp.lastLine
	imp.written = imp.lastLine
	for {
		if err := ctx.Err(); err != nil {
			return imp.result(), err
		}
		rec, err := imp.rows.next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *rowError
		if errors.As(err, &re) {
			imp.lastLine = max(imp.lastLine, re.line)
			if re.line > imp.opts.StartAfterLine {
				imp.reject(re.line, "", re.reason, re.raw)
			}
			if imp.group == nil {
				imp.doneLine = imp.lastLine
			}
			continue
		}
		if err != nil {
			return imp.result(), fmt.Errorf("%s: line %d: %v", imp.opts.FileName, imp.lastLine+1, err)
		}
		imp.lastLine = rec.line
		if rec.line <= imp.opts.StartAfterLine {
			imp.doneLine = rec.line
			imp.written = rec.line
			continue
		}
		if rec.raw == nil {
			rec.raw = []byte(strings.Join(rec.fields, ","))
		}
		if imp.m.Order == nil {
			imp.single(rec)
			imp.doneLine = rec.line
		} else if err := imp.grouped(rec); err != nil {
			return imp.result(), err
		}
		if len(imp.events) >= imp.opts.BatchSize || len(imp.rejects) >= imp.opts.BatchSize {
			if err := imp.flush(ctx); err != nil {
				return imp.result(), err
			}
		} else if imp.opts.Progress != nil && imp.lastLine%progressLines == 0 {
			// Files that make few events (mostly rejects, or long orders)
			// still move the progress bar.
			imp.opts.Progress(imp.result().Progress)
		}
	}
	imp.closeGroup()
	imp.doneLine = imp.lastLine
	if err := imp.flush(ctx); err != nil {
		return imp.result(), err
	}
	return imp.result(), nil
}

func (imp *importer) result() Result {
	imp.res.Lines = imp.lastLine
	imp.res.BytesRead = imp.counter.n
	return Result{Progress: imp.res, LastLine: imp.written}
}

// flush writes the batch and reports the checkpoint.
func (imp *importer) flush(ctx context.Context) error {
	if len(imp.events) == 0 && len(imp.rejects) == 0 && imp.doneLine == imp.written {
		return nil
	}
	if len(imp.events) > 0 || len(imp.rejects) > 0 {
		n, err := imp.sink.Write(ctx, imp.events, imp.rejects)
		if err != nil {
			return fmt.Errorf("%s: writing events up to line %d: %w", imp.opts.FileName, imp.doneLine, err)
		}
		imp.res.Events += len(imp.events)
		imp.res.New += n
	}
	imp.events = imp.events[:0]
	imp.rejects = imp.rejects[:0]
	imp.written = imp.doneLine
	if imp.opts.Checkpoint != nil {
		if err := imp.opts.Checkpoint(imp.written); err != nil {
			return fmt.Errorf("%s: checkpoint at line %d: %w", imp.opts.FileName, imp.written, err)
		}
	}
	if imp.opts.Progress != nil {
		r := imp.result()
		imp.opts.Progress(r.Progress)
	}
	return nil
}

func (imp *importer) reject(line int, field, reason string, raw []byte) {
	rj := kiln.Reject{
		SourceID:   imp.opts.SourceID,
		ReceivedAt: imp.receivedAt,
		Origin:     imp.origin,
		Index:      line,
		Field:      field,
		Reason:     fmt.Sprintf("line %d: %s", line, reason),
		Payload:    append([]byte(nil), raw...),
	}
	imp.rejects = append(imp.rejects, rj)
	imp.res.Rejects++
	if imp.opts.OnReject != nil {
		imp.opts.OnReject(rj)
	}
}

// cell returns a field's converted value; ok is false for an empty cell.
func (imp *importer) cell(rec *record, f *field) (any, bool, error) {
	if rec.obj != nil || f.col < 0 {
		v, ok := lookupPath(rec.obj, f.column)
		if !ok || v == nil {
			return nil, false, nil
		}
		if f.typ == typeAuto {
			return v, true, nil
		}
		s, isStr := v.(string)
		if !isStr {
			if n, isNum := v.(float64); isNum && (f.typ == typeNumber || f.typ == typeInt) {
				if f.typ == typeInt && n != math.Trunc(n) {
					return nil, false, fmt.Errorf("column %s: %v is not an integer", f.column, n)
				}
				return n, true, nil
			}
			s = fmt.Sprint(v)
		}
		return convert(f, s)
	}
	if f.col >= len(rec.fields) {
		return nil, false, nil
	}
	return convert(f, rec.fields[f.col])
}

func lookupPath(obj map[string]any, path string) (any, bool) {
	if v, ok := obj[path]; ok {
		return v, true
	}
	cur := any(obj)
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func convert(f *field, s string) (any, bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, false, nil
	}
	switch f.typ {
	case typeNumber:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, false, fmt.Errorf("column %s: %q is not a number", f.column, s)
		}
		return v, true, nil
	case typeInt:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("column %s: %q is not an integer", f.column, s)
		}
		return float64(v), true, nil // JSON numbers are float64 everywhere else too
	case typeBool:
		v, err := strconv.ParseBool(strings.ToLower(s))
		if err != nil {
			switch strings.ToLower(s) {
			case "yes", "y":
				return true, true, nil
			case "no", "n":
				return false, true, nil
			}
			return nil, false, fmt.Errorf("column %s: %q is not true or false", f.column, s)
		}
		return v, true, nil
	}
	return s, true, nil
}

// build makes the event-level part of an event from a row.
func (imp *importer) build(rec *record) (kiln.Event, string, string) {
	e := kiln.Event{
		SourceID:   imp.opts.SourceID,
		Type:       imp.evType,
		Name:       imp.m.Event,
		ReceivedAt: imp.receivedAt,
		MessageID:  "import-" + imp.opts.FileID + "-" + strconv.Itoa(rec.line),
	}
	set := func(target string, v any) {
		switch target {
		case "userId":
			e.UserID = fmt.Sprint(v)
		case "anonymousId":
			e.AnonymousID = fmt.Sprint(v)
		case "messageId":
			e.MessageID = fmt.Sprint(v)
		case "event":
			e.Name = fmt.Sprint(v)
		case "store":
			e.Store = fmt.Sprint(v)
		case "email", "phone", "loyalty":
			key := target
			if target == "loyalty" {
				key = "loyalty_number"
			}
			// Identify traits describe the customer; on track the
			// identifier goes in context.traits, where Identifiers looks.
			if e.Type == kiln.Identify {
				setPath(&e.Traits, key, v)
			} else {
				setPath(&e.Context, "traits."+key, v)
			}
		default:
			area, name, _ := strings.Cut(target, ".")
			switch area {
			case "properties":
				setPath(&e.Properties, name, v)
			case "traits":
				setPath(&e.Traits, name, v)
			case "context":
				setPath(&e.Context, name, v)
			}
		}
	}
	for _, k := range sortedKeys(imp.m.Constants) {
		set(k, imp.m.Constants[k])
	}
	for i := range imp.fields {
		f := &imp.fields[i]
		if f.target == "timestamp" {
			continue
		}
		v, ok, err := imp.cell(rec, f)
		if err != nil {
			return e, f.target, err.Error()
		}
		if ok {
			set(f.target, v)
		}
	}
	if f := imp.tsField; f != nil {
		v, ok, err := imp.cell(rec, f)
		if err != nil {
			return e, "timestamp", err.Error()
		}
		if !ok {
			return e, "timestamp", fmt.Sprintf("column %s is empty", f.column)
		}
		ts, err := parseTimestamp(v, imp.m.TimestampLayout, imp.loc)
		if err != nil {
			return e, "timestamp", fmt.Sprintf("column %s: %v", f.column, err)
		}
		if ts.After(imp.receivedAt.Add(24 * time.Hour)) {
			return e, "timestamp", fmt.Sprintf("column %s: %s is in the future", f.column, ts.Format(time.RFC3339))
		}
		e.Timestamp = ts.UTC()
	} else {
		e.Timestamp = imp.receivedAt
	}
	if e.Type == kiln.Track && strings.TrimSpace(e.Name) == "" {
		return e, "event", "no event name"
	}
	return e, "", ""
}

func setPath(m *map[string]any, path string, v any) {
	if *m == nil {
		*m = map[string]any{}
	}
	cur := *m
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

func parseTimestamp(v any, layout string, loc *time.Location) (time.Time, error) {
	if n, ok := v.(float64); ok {
		switch layout {
		case "unixms":
			return time.UnixMilli(int64(n)), nil
		case "", "unix":
			return time.Unix(int64(n), int64((n-math.Trunc(n))*1e9)), nil
		}
		v = strconv.FormatFloat(n, 'f', -1, 64)
	}
	s := strings.TrimSpace(fmt.Sprint(v))
	switch layout {
	case "", "rfc3339":
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, nil
		}
		if t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, loc); err == nil {
			return t, nil
		}
		if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z); set timestampLayout", s)
	case "unix", "unixms":
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a Unix time", s)
		}
		return parseTimestamp(n, layout, loc)
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q does not match layout %q", s, layout)
	}
	return t, nil
}

// single turns one row into one event.
func (imp *importer) single(rec record) {
	if imp.segment {
		e, field, reason := ingest.DecodeArchived(rec.raw, ingest.ArchiveOptions{SourceID: imp.opts.SourceID, ReceivedAt: imp.receivedAt, Identity: imp.opts.Identity})
		if reason != "" {
			imp.reject(rec.line, field, reason, rec.raw)
			return
		}
		imp.events = append(imp.events, e)
		return
	}
	e, field, reason := imp.build(&rec)
	if reason == "" {
		field, reason = imp.finish(&e)
	}
	if reason != "" {
		imp.reject(rec.line, field, reason, rec.raw)
		return
	}
	imp.events = append(imp.events, e)
}

// finish sets e's Anchor and checks that a store can hold e (a date in
// 1600, a NUL character), so that one bad row is rejected with its line
// instead of failing the batch it would be written in.
func (imp *importer) finish(e *kiln.Event) (field, reason string) {
	if e.Anchor = ingest.AnchorWith(imp.opts.Identity, e); e.Anchor == "" {
		return "userId", "no customer identifier (the identifier columns are empty or invalid)"
	}
	return ingest.CheckStorable(e)
}

// grouped adds a row to the open order, closing it first if the row
// starts another.
func (imp *importer) grouped(rec record) error {
	v, ok, _ := imp.cell(&rec, &imp.orderCol)
	id := ""
	if ok {
		id = fmt.Sprint(v)
	}
	if imp.group != nil && id != imp.groupID {
		imp.closeGroup()
	}
	if id == "" {
		imp.reject(rec.line, "properties.order_id", fmt.Sprintf("column %s (the order id) is empty", imp.orderCol.column), rec.raw)
		imp.doneLine = rec.line
		return nil
	}
	if imp.group == nil {
		// Everything before the new order is settled.
		imp.doneLine = rec.line - 1
	}
	imp.groupID = id
	imp.group = append(imp.group, rec)
	return nil
}

// closeGroup turns the open order's rows into one event.
func (imp *importer) closeGroup() {
	rows := imp.group
	if len(rows) == 0 {
		return
	}
	imp.group = nil
	first, last := rows[0].line, rows[len(rows)-1].line
	defer func() { imp.doneLine = last }()
	reject := func(field, reason string) {
		if len(rows) > 1 {
			reason = fmt.Sprintf("order %s (lines %d-%d): %s", imp.groupID, first, last, reason)
		}
		imp.reject(first, field, reason, rows[0].raw)
	}
	e, field, reason := imp.build(&rows[0])
	if reason == "" {
		field, reason = imp.finish(&e)
	}
	if reason != "" {
		reject(field, reason)
		return
	}
	refund := imp.m.Order.RefundPrefix != "" && strings.HasPrefix(imp.groupID, imp.m.Order.RefundPrefix)
	if refund {
		e.Name = kiln.OrderRefunded
	}
	products := make([]any, 0, len(rows))
	revenue := 0.0
	for i := range rows {
		p := map[string]any{}
		bad := false
		for j := range imp.products {
			f := &imp.products[j]
			v, ok, err := imp.cell(&rows[i], f)
			if err != nil {
				imp.reject(rows[i].line, f.target, err.Error(), rows[i].raw)
				bad = true
				break
			}
			if ok {
				if n, isNum := v.(float64); isNum && refund {
					v = math.Abs(n)
				}
				p[strings.TrimPrefix(f.target, "products[].")] = v
			}
		}
		if bad {
			continue
		}
		price, _ := p["price"].(float64)
		qty, hasQty := p["quantity"].(float64)
		if !hasQty {
			qty = 1
		}
		revenue += price * qty
		products = append(products, p)
	}
	if e.Properties == nil {
		e.Properties = map[string]any{}
	}
	e.Properties["order_id"] = imp.groupID
	e.Properties["products"] = products
	if imp.m.Order.Revenue {
		if refund {
			revenue = math.Abs(revenue)
		}
		e.Properties["revenue"] = math.Round(revenue*100) / 100
	}
	if field, reason := ingest.CheckStorable(&e); reason != "" { // now with the products
		reject(field, reason)
		return
	}
	imp.events = append(imp.events, e)
}
