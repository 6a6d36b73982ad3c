package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/export"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
	"github.com/parquet-go/parquet-go"
)

var ctx = context.Background()

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// money is how the engine hands out a computed amount: a value that
// marshals to its exact JSON number.
type money struct{ text string }

func (m money) MarshalJSON() ([]byte, error) { return []byte(m.text), nil }

// fixture is a real SQLite store with three customers: ann and bob in vip
// (cy entered and left), with stored traits, and computed traits and
// model scores from a fake engine.
func fixture(t *testing.T) (export.Source, store.Store) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	res := store.Resolution{}
	for i, p := range []struct {
		id, email string
		traits    map[string]any
	}{
		{"p_ann", "ann@example.com", map[string]any{"first_name": "=HYPERLINK(\"http://evil\",\"x\")", "city": "Leeds"}},
		{"p_bob", "bob@example.com", map[string]any{"first_name": "Bob", "city": "@SUM(A1)", "note": "-2+3"}},
		{"p_cy", "cy@example.com", map[string]any{"first_name": "Cy"}},
	} {
		res.Profiles = append(res.Profiles, store.ProfileChange{ID: p.id, Traits: p.traits, EventCount: 1, At: t0.Add(time.Duration(i) * time.Minute)})
		res.Identities = append(res.Identities, kiln.Identity{Identifier: kiln.Identifier{Kind: kiln.Email, Value: p.email}, ProfileID: p.id, FirstSeen: t0})
	}
	res.Transitions = []kiln.Transition{
		{Segment: "vip", ProfileID: "p_ann", Entered: true, At: t0, Version: 1, Reason: kiln.ReasonEvent, Act: true},
		{Segment: "vip", ProfileID: "p_cy", Entered: true, At: t0.Add(time.Minute), Version: 1, Reason: kiln.ReasonEvent, Act: true},
	}
	if err := st.ApplyResolution(ctx, res); err != nil {
		t.Fatal(err)
	}
	computed := map[string]map[string]any{
		"p_ann": {"orders_90d": int64(3), "spend_90d": money{"386.93"}, "predicted_clv": 412.5, "churn_risk": false, "rfm_segment": "Champions"},
		"p_bob": {"orders_90d": int64(1), "spend_90d": money{"20"}, "predicted_clv": 35.25, "churn_risk": true, "rfm_segment": "New Customers"},
		"p_cy":  {"orders_90d": int64(0)},
	}
	return export.Source{Store: st, Traits: func(pid string) map[string]any { return computed[pid] }}, st
}

// later records more transitions: bob enters and cy leaves.
func later(t *testing.T, st store.Store) {
	t.Helper()
	if err := st.ApplyResolution(ctx, store.Resolution{Transitions: []kiln.Transition{
		{Segment: "vip", ProfileID: "p_bob", Entered: true, At: t0.Add(time.Hour), Version: 1, Reason: kiln.ReasonEvent, Act: true},
		{Segment: "vip", ProfileID: "p_cy", Entered: false, At: t0.Add(2 * time.Hour), Version: 1, Reason: kiln.ReasonExpiry, Act: true},
	}}); err != nil {
		t.Fatal(err)
	}
}

func TestParquetReadBack(t *testing.T) {
	src, st := fixture(t)
	later(t, st)
	var buf bytes.Buffer
	res, err := export.Write(ctx, src, export.Options{Segment: "vip", Format: export.Parquet}, &buf)
	if err != nil || res.Rows != 2 {
		t.Fatalf("Write: %+v, %v", res, err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, field := range f.Schema().Fields() {
		types[field.Name()] = field.Type().String()
		if !field.Optional() {
			t.Errorf("column %s is not optional", field.Name())
		}
	}
	for col, want := range map[string]string{
		"profile_id": "STRING", "member_since": "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", "orders_90d": "INT(64,true)", "spend_90d": "DOUBLE",
		"predicted_clv": "DOUBLE", "churn_risk": "BOOLEAN", "rfm_segment": "STRING", "first_name": "STRING", "email": "STRING",
	} {
		if types[col] != want {
			t.Errorf("column %s: type %q, want %s (all: %v)", col, types[col], want, types)
		}
	}
	rows := make([]map[string]any, 0, 2)
	r := parquet.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		m := map[string]any{}
		if err := r.Read(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, m)
	}
	if len(rows) != 2 {
		t.Fatalf("read back %d rows", len(rows))
	}
	ann, bob := rows[0], rows[1]
	if ann["profile_id"] != "p_ann" || bob["profile_id"] != "p_bob" || ann["email"] != "ann@example.com" || ann["segment"] != "vip" {
		t.Fatalf("rows %v", rows)
	}
	if ann["orders_90d"] != int64(3) || ann["spend_90d"] != 386.93 || ann["predicted_clv"] != 412.5 || ann["churn_risk"] != false || ann["rfm_segment"] != "Champions" {
		t.Errorf("ann's traits %v", ann)
	}
	if bob["spend_90d"] != 20.0 || bob["churn_risk"] != true || bob["note"] != "-2+3" || bob["city"] != "@SUM(A1)" {
		t.Errorf("bob's traits %v (Parquet keeps text as it is)", bob)
	}
	since, ok := ann["member_since"].(time.Time)
	if !ok {
		since = time.UnixMicro(ann["member_since"].(int64))
	}
	if !since.Equal(t0) {
		t.Errorf("ann member_since %v, want %v", ann["member_since"], t0)
	}
	if ann["note"] != nil {
		t.Errorf("ann has no note: %v", ann["note"])
	}
}

func TestCSVEscapesFormulas(t *testing.T) {
	src, st := fixture(t)
	later(t, st)
	var buf bytes.Buffer
	if _, err := export.Write(ctx, src, export.Options{Segment: "vip", Format: export.CSV}, &buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	col := map[string]int{}
	for i, n := range recs[0] {
		col[n] = i
	}
	if !slices.IsSorted(recs[0]) {
		t.Errorf("header %v is not by name", recs[0])
	}
	ann, bob := recs[1], recs[2]
	for _, c := range []struct{ got, want string }{
		{ann[col["first_name"]], `'=HYPERLINK("http://evil","x")`},
		{bob[col["city"]], "'@SUM(A1)"},
		{bob[col["note"]], "'-2+3"},
		{ann[col["city"]], "Leeds"},
		{ann[col["spend_90d"]], "386.93"},
		{ann[col["orders_90d"]], "3"},
		{ann[col["churn_risk"]], "false"},
		{ann[col["member_since"]], "2026-03-01 10:00:00.000000"},
		{ann[col["note"]], ""},
	} {
		if c.got != c.want {
			t.Errorf("cell %q, want %q", c.got, c.want)
		}
	}
	for _, s := range []string{"=", "+", "-", "@", "\t", "\r"} {
		if got := export.EscapeFormula(s + "x"); got != "'"+s+"x" {
			t.Errorf("EscapeFormula(%q) = %q", s+"x", got)
		}
	}
	if got := export.EscapeFormula("Leeds"); got != "Leeds" {
		t.Errorf("EscapeFormula(Leeds) = %q", got)
	}
}

// TestIncrementalCursor: an export from a cursor holds only the later
// transitions, and its cursor continues from there.
func TestIncrementalCursor(t *testing.T) {
	src, st := fixture(t)
	var buf bytes.Buffer
	first, err := export.Write(ctx, src, export.Options{Segment: "vip", Format: export.NDJSON, Incremental: true}, &buf)
	if err != nil || first.Rows != 2 || first.Cursor == 0 {
		t.Fatalf("first incremental: %+v, %v", first, err)
	}
	later(t, st)
	buf.Reset()
	second, err := export.Write(ctx, src, export.Options{Segment: "vip", Format: export.NDJSON, Incremental: true, After: first.Cursor}, &buf)
	if err != nil || second.Rows != 2 || second.Cursor <= first.Cursor {
		t.Fatalf("second incremental: %+v, %v", second, err)
	}
	var got []string
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if id := int64(m["transition_id"].(float64)); id <= first.Cursor {
			t.Errorf("transition %d is not after the cursor %d", id, first.Cursor)
		}
		got = append(got, m["profile_id"].(string)+" "+m["change"].(string)+" "+m["reason"].(string)+" "+m["changed_at"].(string))
	}
	want := []string{"p_bob entered event 2026-03-01 11:00:00.000000", "p_cy exited expiry 2026-03-01 12:00:00.000000"}
	if !slices.Equal(got, want) {
		t.Fatalf("changes after the cursor: %q, want %q", got, want)
	}
	buf.Reset()
	third, err := export.Write(ctx, src, export.Options{Segment: "vip", Format: export.NDJSON, Incremental: true, After: second.Cursor}, &buf)
	if err != nil || third.Rows != 0 || third.Cursor != second.Cursor || buf.Len() != 0 {
		t.Fatalf("nothing new: %+v, %v, %q", third, err, buf.String())
	}
}

// TestSchedule writes to a directory twice: full files each time, changes
// only for what happened in between, schemas that match the files.
func TestSchedule(t *testing.T) {
	src, st := fixture(t)
	dir := t.TempDir()
	clock := t0
	s := &export.Schedule{Dir: dir, Every: time.Hour, Formats: []string{export.CSV, export.Parquet}, Segments: func() []string { return []string{"vip"} },
		Source: src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock }}
	if err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	later(t, st)
	clock = clock.Add(time.Hour)
	if err := s.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	names := func(pattern string) []string {
		m, _ := filepath.Glob(filepath.Join(dir, "vip", pattern))
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	if got := names("changes-*.csv"); len(got) != 2 {
		t.Fatalf("change files %v, want one per run", got)
	}
	if got := names("members-*.parquet"); len(got) != 3 {
		t.Fatalf("member files %v, want two runs and latest", got)
	}
	latest, _ := os.ReadFile(filepath.Join(dir, "vip", "members-latest.csv"))
	recs, _ := csv.NewReader(bytes.NewReader(latest)).ReadAll()
	if len(recs) != 3 {
		t.Fatalf("latest members: %q", latest)
	}
	second := names("changes-20260301T110000.000Z.csv")
	if len(second) != 1 {
		t.Fatalf("no second change file: %v", names("*"))
	}
	b, _ := os.ReadFile(filepath.Join(dir, "vip", second[0]))
	if recs, _ := csv.NewReader(bytes.NewReader(b)).ReadAll(); len(recs) != 3 || !strings.Contains(string(b), "p_bob") || strings.Contains(string(b), "p_ann") {
		t.Fatalf("second run's changes: %q", b)
	}
	var schema []struct{ Name, Type, Mode string }
	sb, _ := os.ReadFile(filepath.Join(dir, "vip", "members.schema.json"))
	if err := json.Unmarshal(sb, &schema); err != nil {
		t.Fatal(err)
	}
	header := recs[0]
	if len(schema) != len(header) {
		t.Fatalf("schema %v for header %v", schema, header)
	}
	for i, f := range schema {
		if f.Name != header[i] || f.Mode != "NULLABLE" {
			t.Errorf("schema field %d %+v, header %q", i, f, header[i])
		}
	}
	ddl, _ := os.ReadFile(filepath.Join(dir, "vip", "members.redshift.sql"))
	if !strings.Contains(string(ddl), "CREATE TABLE IF NOT EXISTS kiln_vip_members (") || !strings.Contains(string(ddl), "spend_90d DOUBLE PRECISION,") || !strings.Contains(string(ddl), "member_since TIMESTAMP,") {
		t.Errorf("redshift DDL:\n%s", ddl)
	}
	cur, _ := os.ReadFile(filepath.Join(dir, "vip", "cursor"))
	if strings.TrimSpace(string(cur)) != "4" {
		t.Errorf("cursor %q, want 4", cur)
	}
}

func TestUnknownFormat(t *testing.T) {
	src, _ := fixture(t)
	_, err := export.Write(ctx, src, export.Options{Segment: "vip", Format: "xml"}, io.Discard)
	if kiln.ErrorCode(err) != kiln.EInvalid || !strings.Contains(err.Error(), "parquet") {
		t.Fatalf("xml: %v", err)
	}
}
