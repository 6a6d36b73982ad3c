// Package export writes a segment's members, or its entries and exits
// since a cursor, as files BI tools and warehouses load: CSV, NDJSON and
// Parquet, one column per trait (stored profile traits, computed traits
// and model scores), with schema files for BigQuery and Redshift
// (docs/EXPORTS.md).
//
// The columns are known only once every member's traits are: Write reads
// the members (or transitions) twice, once for the column names and
// types, once to write. Traits that change between the two passes are
// written as they are then; a value that no longer fits its column's type
// is written as null (Parquet, NDJSON keep the value).
package export

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// Formats.
const (
	CSV     = "csv"
	NDJSON  = "ndjson"
	Parquet = "parquet"
)

// Formats lists the formats, for messages.
var Formats = []string{CSV, NDJSON, Parquet}

// Column types, named as BigQuery names them.
const (
	TString    = "STRING"
	TInt       = "INT64"
	TFloat     = "FLOAT64"
	TBool      = "BOOL"
	TTimestamp = "TIMESTAMP"
)

// Column is one column of an export.
type Column struct {
	Name  string // a warehouse-safe identifier: [a-z_][a-z0-9_]*
	Type  string // TString, TInt, TFloat, TBool or TTimestamp
	trait string // the trait it holds, "" for a fixed column
	pos   int    // a fixed column's place in the row's fixed cells
}

// Options choose what to export.
type Options struct {
	Segment string
	Format  string
	// Incremental exports transitions (entries and exits) with ID > After
	// instead of the current members.
	Incremental bool
	After       int64
	// UpTo, if not 0, stops an incremental export after that transition
	// ID, so exports of one range in several formats hold the same rows.
	UpTo int64
}

// Source is where exports read from.
type Source struct {
	Store store.Store
	// Traits returns a profile's computed traits and model scores (the
	// engine's); they are added to, and win over, its stored traits. Nil:
	// stored traits only.
	Traits func(profileID string) map[string]any
}

// Result says what Write wrote.
type Result struct {
	Rows int
	// Columns are in the file's order, by name in every format, which is
	// the order Redshift's COPY matches them by.
	Columns []Column
	// Cursor is the ID of the last transition written (incremental), or
	// After when there was none: pass it as After next time.
	Cursor int64
}

// page is how many members or transitions are read at once.
const page = 1000

// row is one record before it is formatted.
type row struct {
	fixed  []cell // in the order of fixedColumns
	traits map[string]any
}

// cell is a normalized value: numbers keep their exact text.
type cell struct {
	kind byte // 0 null, 's' string, 'n' number, 'b' bool, 't' time, 'i' int
	s    string
	f    float64
	i    int64
	b    bool
	t    time.Time
}

func fixedColumns(incremental bool) []Column {
	cols := fixedNames(incremental)
	for i := range cols {
		cols[i].pos = i
	}
	return cols
}

func fixedNames(incremental bool) []Column {
	if incremental {
		return []Column{{Name: "transition_id", Type: TInt}, {Name: "segment", Type: TString}, {Name: "change", Type: TString},
			{Name: "changed_at", Type: TTimestamp}, {Name: "reason", Type: TString}, {Name: "version", Type: TInt},
			{Name: "profile_id", Type: TString}, {Name: "email", Type: TString}, {Name: "phone", Type: TString}, {Name: "user_id", Type: TString}}
	}
	return []Column{{Name: "segment", Type: TString}, {Name: "profile_id", Type: TString}, {Name: "member_since", Type: TTimestamp},
		{Name: "version", Type: TInt}, {Name: "email", Type: TString}, {Name: "phone", Type: TString}, {Name: "user_id", Type: TString}}
}

// Write exports to w and returns what it wrote.
func Write(ctx context.Context, src Source, o Options, w io.Writer) (Result, error) {
	res := Result{Cursor: o.After}
	var enc encoder
	switch o.Format {
	case CSV, NDJSON, Parquet:
	default:
		return res, kiln.Errorf(kiln.EInvalid, "export format %q: want %s", o.Format, strings.Join(Formats, ", "))
	}
	// Pass 1: the trait columns and their types.
	types := map[string]string{}
	if _, err := scan(ctx, src, o, func(r row) error {
		for k, v := range r.traits {
			if k != "" {
				types[k] = merge(types[k], typeOf(normalize(v)))
			}
		}
		return nil
	}); err != nil {
		return res, err
	}
	res.Columns = columns(fixedColumns(o.Incremental), types)
	var err error
	switch o.Format {
	case CSV:
		enc, err = newCSV(w, res.Columns)
	case NDJSON:
		enc = newNDJSON(w, res.Columns)
	case Parquet:
		var pe *parquetEncoder
		pe, err = newParquet(w, res.Columns)
		if err == nil {
			enc, res.Columns = pe, pe.fileColumns(res.Columns)
		}
	}
	if err != nil {
		return res, err
	}
	// Pass 2: the rows.
	cur, err := scan(ctx, src, o, func(r row) error {
		cells := make([]cell, len(res.Columns))
		for i, c := range res.Columns {
			if c.trait == "" {
				cells[i] = r.fixed[c.pos]
			} else if v, ok := r.traits[c.trait]; ok {
				cells[i] = fit(normalize(v), c.Type)
			}
		}
		res.Rows++
		return enc.write(cells)
	})
	if err != nil {
		return res, err
	}
	if cur > res.Cursor {
		res.Cursor = cur
	}
	return res, enc.close()
}

// scan calls fn for every row and returns the last transition ID seen.
func scan(ctx context.Context, src Source, o Options, fn func(row) error) (int64, error) {
	profile := func(pid string) (*kiln.Profile, map[string]any, error) {
		p, err := src.Store.GetProfile(ctx, pid)
		if err != nil && !store.IsNotFound(err) {
			return nil, nil, fmt.Errorf("export of %s: profile %s: %w", o.Segment, pid, err)
		}
		traits := map[string]any{}
		if p != nil {
			for k, v := range p.Traits {
				traits[k] = v
			}
		}
		if src.Traits != nil {
			for k, v := range src.Traits(pid) {
				traits[k] = v
			}
		}
		return p, traits, nil
	}
	ids := func(p *kiln.Profile) []cell {
		if p == nil {
			return []cell{{}, {}, {}}
		}
		return []cell{str(identifier(p, kiln.Email)), str(identifier(p, kiln.Phone)), str(identifier(p, kiln.UserID))}
	}
	if o.Incremental {
		after := o.After
		for {
			ts, err := src.Store.Transitions(ctx, store.TransitionQuery{Segment: o.Segment, After: after, Limit: page})
			if err != nil {
				return after, fmt.Errorf("export of %s: transitions after %d: %w", o.Segment, after, err)
			}
			for _, t := range ts {
				if o.UpTo > 0 && t.ID > o.UpTo {
					return after, nil
				}
				p, traits, err := profile(t.ProfileID)
				if err != nil {
					return after, err
				}
				change := "exited"
				if t.Entered {
					change = "entered"
				}
				fixed := append([]cell{{kind: 'i', i: t.ID}, str(t.Segment), str(change), {kind: 't', t: t.At}, str(t.Reason),
					{kind: 'i', i: t.Version}, str(t.ProfileID)}, ids(p)...)
				if err := fn(row{fixed, traits}); err != nil {
					return after, err
				}
				after = t.ID
			}
			if len(ts) < page {
				return after, nil
			}
		}
	}
	after := ""
	for {
		ms, err := src.Store.Members(ctx, o.Segment, after, page)
		if err != nil {
			return 0, fmt.Errorf("export of %s: members after %q: %w", o.Segment, after, err)
		}
		for _, m := range ms {
			p, traits, err := profile(m.ProfileID)
			if err != nil {
				return 0, err
			}
			fixed := append([]cell{str(o.Segment), str(m.ProfileID), {kind: 't', t: m.Since}, {kind: 'i', i: m.Version}}, ids(p)...)
			if err := fn(row{fixed, traits}); err != nil {
				return 0, err
			}
		}
		if len(ms) < page {
			return 0, nil
		}
		after = ms[len(ms)-1].ProfileID
	}
}

func identifier(p *kiln.Profile, kind kiln.IdentifierKind) string {
	for _, id := range p.Identities {
		if id.Kind == kind {
			return id.Value
		}
	}
	return ""
}

func str(s string) cell {
	if s == "" {
		return cell{}
	}
	return cell{kind: 's', s: s}
}

// normalize turns a trait value into a cell. Values that are not plain
// JSON scalars (computed numbers, money, lists) are read through their
// JSON form, so a computed 386.93 stays exactly 386.93.
func normalize(v any) cell {
	switch x := v.(type) {
	case nil:
		return cell{}
	case string:
		return cell{kind: 's', s: x}
	case bool:
		return cell{kind: 'b', b: x}
	case float64:
		return num(strconv.FormatFloat(x, 'f', -1, 64), x)
	case int:
		return num(strconv.Itoa(x), float64(x))
	case int64:
		return num(strconv.FormatInt(x, 10), float64(x))
	case time.Time:
		return cell{kind: 't', t: x}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return cell{kind: 's', s: fmt.Sprint(v)}
	}
	var n json.Number
	if json.Unmarshal(b, &n) == nil {
		f, _ := n.Float64()
		return num(n.String(), f)
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return cell{kind: 's', s: s}
	}
	if string(b) == "null" {
		return cell{}
	}
	return cell{kind: 's', s: string(b)} // objects and lists: their JSON
}

func num(text string, f float64) cell {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return cell{}
	}
	return cell{kind: 'n', s: text, f: f}
}

func typeOf(c cell) string {
	switch c.kind {
	case 's':
		return TString
	case 'b':
		return TBool
	case 't':
		return TTimestamp
	case 'n':
		if f := c.f; f == math.Trunc(f) && math.Abs(f) < 1<<53 && !strings.ContainsAny(c.s, ".eE") {
			return TInt
		}
		return TFloat
	}
	return ""
}

// merge widens a column's type to hold both: integers and fractions are
// FLOAT64, anything else mixed is STRING.
func merge(a, b string) string {
	switch {
	case a == "" || a == b:
		return b
	case b == "":
		return a
	case (a == TInt && b == TFloat) || (a == TFloat && b == TInt):
		return TFloat
	}
	return TString
}

// fit converts c to a column of type t, or null if it cannot.
func fit(c cell, t string) cell {
	if c.kind == 0 {
		return c
	}
	switch t {
	case TString:
		switch c.kind {
		case 'b':
			return cell{kind: 's', s: strconv.FormatBool(c.b)}
		case 't':
			return cell{kind: 's', s: c.t.UTC().Format(time.RFC3339Nano)}
		}
		return cell{kind: 's', s: c.s}
	case TInt:
		if c.kind == 'n' && c.f == math.Trunc(c.f) && math.Abs(c.f) < 1<<63 {
			return cell{kind: 'i', i: int64(c.f), s: c.s}
		}
	case TFloat:
		if c.kind == 'n' {
			return c
		}
	case TBool:
		if c.kind == 'b' {
			return c
		}
	case TTimestamp:
		if c.kind == 't' {
			return c
		}
	}
	return cell{}
}

var notIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// columns appends a column per trait, by name, with warehouse-safe names:
// lower case (Redshift folds case), [a-z0-9_], not starting with a digit,
// and never the name of a fixed column or of another trait.
func columns(fixed []Column, types map[string]string) []Column {
	names := make([]string, 0, len(types))
	for k := range types {
		names = append(names, k)
	}
	sort.Strings(names)
	taken := map[string]bool{}
	for _, c := range fixed {
		taken[c.Name] = true
	}
	out := fixed
	for _, trait := range names {
		n := strings.Trim(notIdent.ReplaceAllString(strings.ToLower(trait), "_"), "_")
		if n == "" || n[0] >= '0' && n[0] <= '9' {
			n = "t_" + n
		}
		if taken[n] {
			n = "trait_" + n
		}
		for i := 2; taken[n]; i++ {
			n = fmt.Sprintf("%s_%d", strings.TrimRight(n, "_0123456789"), i)
		}
		taken[n] = true
		t := types[trait]
		if t == "" {
			t = TString // only nulls seen
		}
		out = append(out, Column{Name: n, Type: t, trait: trait})
	}
	// One order, by name, for every format: Parquet's own (its schema is a
	// group of named fields), so one BigQuery schema and one Redshift
	// table (whose COPY matches columns by position) fit every file.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// encoder writes rows of cells in one format.
type encoder interface {
	write([]cell) error
	close() error
}
