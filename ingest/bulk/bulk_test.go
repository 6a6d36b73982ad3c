package bulk

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// memSink keeps everything written and dedupes by messageId like the store.
type memSink struct {
	mu      sync.Mutex
	events  []kiln.Event
	rejects []kiln.Reject
	seen    map[string]bool
	writes  int
	// failAt makes the write with this number (1-based) fail.
	failAt int
}

func (s *memSink) Write(_ context.Context, events []kiln.Event, rejects []kiln.Reject) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.writes == s.failAt {
		return 0, errors.New("connection lost")
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	n := 0
	for _, e := range events {
		if !s.seen[e.MessageID] {
			s.seen[e.MessageID] = true
			n++
		}
	}
	s.events = append(s.events, events...)
	s.rejects = append(s.rejects, rejects...)
	return n, nil
}

const dataDir = "/work/shared/data/"

func needData(t *testing.T, name string) string {
	t.Helper()
	p := dataDir + name
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not available (%v): the reference data sets live in /work/shared/data", name, err)
	}
	return p
}

func preset(t *testing.T, name string) Mapping {
	t.Helper()
	m, err := Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCDNOWPreset(t *testing.T) {
	t.Parallel()
	path := needData(t, "CDNOW_sample.txt")
	sink := &memSink{}
	var progress []Progress
	res, err := ImportFile(context.Background(), path, sink, Options{
		Mapping: preset(t, "cdnow"), SourceID: "src_cdnow", BatchSize: 1000,
		Progress: func(p Progress) { progress = append(progress, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	// The data set's published facts (README): 6,919 rows, 2,357
	// customers, 1997-01-01 to 1998-06-30, 16,479 CDs, $244,091.94.
	if res.Events != 6919 || res.New != 6919 || res.Rejects != 0 || res.LastLine != 6919 || len(sink.rejects) != 0 {
		t.Fatalf("result %+v, rejects %v", res, firstRejects(sink.rejects))
	}
	users := map[string]bool{}
	var dollars, cds float64
	first, last := sink.events[0].Timestamp, sink.events[0].Timestamp
	for _, e := range sink.events {
		users[e.UserID] = true
		dollars += e.Properties["revenue"].(float64)
		cds += e.Properties["quantity"].(float64)
		if e.Timestamp.Before(first) {
			first = e.Timestamp
		}
		if e.Timestamp.After(last) {
			last = e.Timestamp
		}
		if e.Name != kiln.OrderCompleted || e.Properties["currency"] != "USD" || e.SourceID != "src_cdnow" || e.Anchor != "user_id:"+e.UserID {
			t.Fatalf("event %+v", e)
		}
	}
	if len(users) != 2357 || math.Abs(dollars-244091.94) > 0.005 || cds != 16479 {
		t.Errorf("%d customers, $%.2f, %v CDs", len(users), dollars, cds)
	}
	if !first.Equal(time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC)) || !last.Equal(time.Date(1998, 6, 30, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("dates %v to %v", first, last)
	}
	if e := sink.events[0]; e.UserID != "00004" || e.Properties["revenue"] != 29.33 || e.Properties["quantity"] != 2.0 {
		t.Errorf("first row %+v", e)
	}
	// Progress ends at the whole file.
	if len(progress) != 7 || progress[len(progress)-1].BytesRead != 228327 || progress[len(progress)-1].BytesTotal != 228327 || progress[0].Events != 1000 {
		t.Errorf("progress %+v", progress)
	}

	// Importing again stores nothing new: ids come from the file and line.
	res2, err := ImportFile(context.Background(), path, sink, Options{Mapping: preset(t, "cdnow"), SourceID: "src_cdnow"})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Events != 6919 || res2.New != 0 {
		t.Errorf("re-import: %+v", res2)
	}
}

func TestOnlineRetailPreset(t *testing.T) {
	t.Parallel()
	path := needData(t, "online_retail.csv.gz")
	sink := &memSink{}
	res, err := ImportFile(context.Background(), path, sink, Options{Mapping: preset(t, "online-retail"), SourceID: "src_retail"})
	if err != nil {
		t.Fatal(err)
	}
	// 25,901 runs of consecutive invoice lines (one of the 25,900 invoices
	// is split in two); 22,191 have a customer, 3,654 of them cancellations.
	if res.Events != 22191 || res.Rejects != 25901-22191 || res.Lines != 541910 || res.LastLine != 541910 {
		t.Fatalf("result %+v", res)
	}
	var sales, refunds float64
	var nRefunds, lines int
	for _, e := range sink.events {
		rev := e.Properties["revenue"].(float64)
		lines += len(e.Properties["products"].([]any))
		switch e.Name {
		case kiln.OrderRefunded:
			nRefunds++
			refunds += rev
			if !strings.HasPrefix(e.Properties["order_id"].(string), "C") || rev < 0 {
				t.Fatalf("refund %+v", e.Properties)
			}
		case kiln.OrderCompleted:
			sales += rev
		}
	}
	if nRefunds != 3654 || lines != 406829 || math.Abs(sales-8911407.90) > 1 || math.Abs(refunds-611342.09) > 1 {
		t.Errorf("%d refunds, %d product lines, sales %.2f, refunds %.2f", nRefunds, lines, sales, refunds)
	}
	first := sink.events[0]
	p0 := first.Properties["products"].([]any)[0].(map[string]any)
	if first.UserID != "17850" || first.Properties["order_id"] != "536365" || len(first.Properties["products"].([]any)) != 7 ||
		p0["sku"] != "85123A" || p0["name"] != "WHITE HANGING HEART T-LIGHT HOLDER" || p0["quantity"] != 6.0 || p0["price"] != 2.55 ||
		first.Properties["revenue"] != 139.12 || first.Properties["currency"] != "GBP" || first.Properties["country"] != "United Kingdom" {
		t.Errorf("first order %+v", first.Properties)
	}
	// 2010-12-01 08:26 in London (GMT in winter) is 08:26 UTC.
	if !first.Timestamp.Equal(time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC)) {
		t.Errorf("timestamp %v", first.Timestamp)
	}
	rj := sink.rejects[0]
	if rj.Origin != "import:online_retail.csv.gz" || rj.Reason != "line 624: no customer identifier (the identifier columns are empty or invalid)" || rj.Index != 624 ||
		!strings.HasPrefix(string(rj.Payload), "536414,22139,,56,") {
		t.Errorf("reject %+v", rj)
	}
	// A rejected order of several lines names them all.
	multi := 0
	for _, r := range sink.rejects {
		if strings.Contains(r.Reason, fmt.Sprintf("line %d: order ", r.Index)) && strings.Contains(r.Reason, fmt.Sprintf("(lines %d-", r.Index)) {
			multi++
		}
	}
	if multi == 0 {
		t.Errorf("no multi-line order reject names its lines")
	}
}

func firstRejects(r []kiln.Reject) []kiln.Reject {
	if len(r) > 3 {
		return r[:3]
	}
	return r
}

const ordersCSV = `order,customer,email,date,sku,qty,price
1001,c1,,2024-01-05 10:00:00,A,2,5.00
1001,c1,,2024-01-05 10:00:00,B,1,3.50
1002,,Ann@Example.com,2024-01-06 11:00:00,A,1,5.00
1003,,,2024-01-07 12:00:00,C,1,9.99
R1004,c1,,2024-01-08 09:00:00,A,-2,5.00
1005,c2,,2024-01-09 09:00:00,A,two,5.00
1005,c2,,2024-01-09 09:00:00,B,1,3.50
1006,c3,,not a date,A,1,1.00
`

func ordersMapping() Mapping {
	return Mapping{
		Event:           kiln.OrderCompleted,
		TimestampLayout: "2006-01-02 15:04:05",
		Fields: map[string]string{
			"userId": "customer", "email": "email", "timestamp": "date",
			"products[].sku": "sku", "products[].quantity": "qty:int", "products[].price": "price:number",
		},
		Order: &OrderGrouping{IDColumn: "order", RefundPrefix: "R", Revenue: true},
	}
}

func TestOrderGroupingAndRejects(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	var reported []kiln.Reject
	res, err := Import(context.Background(), strings.NewReader(ordersCSV), sink, Options{
		Mapping: ordersMapping(), FileName: "orders.csv", SourceID: "s1",
		OnReject: func(r kiln.Reject) { reported = append(reported, r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 4 || res.Rejects != 3 || len(reported) != 3 {
		t.Fatalf("result %+v, rejects %+v", res, sink.rejects)
	}
	byOrder := map[string]kiln.Event{}
	for _, e := range sink.events {
		byOrder[e.Properties["order_id"].(string)] = e
	}
	if e := byOrder["1001"]; e.Properties["revenue"] != 13.5 || len(e.Properties["products"].([]any)) != 2 || e.MessageID == "" || e.Anchor != "user_id:c1" {
		t.Errorf("order 1001 %+v", e)
	}
	if e := byOrder["1002"]; e.Anchor != "email:ann@example.com" || e.Context["traits"].(map[string]any)["email"] != "Ann@Example.com" {
		t.Errorf("order 1002 %+v", e)
	}
	if e := byOrder["R1004"]; e.Name != kiln.OrderRefunded || e.Properties["revenue"] != 10.0 || e.Properties["products"].([]any)[0].(map[string]any)["quantity"] != 2.0 {
		t.Errorf("refund %+v", e)
	}
	// The bad line of order 1005 is rejected; the order keeps its good line.
	if e := byOrder["1005"]; e.Properties["revenue"] != 3.5 || len(e.Properties["products"].([]any)) != 1 {
		t.Errorf("order 1005 %+v", e)
	}
	want := []struct {
		line   int
		field  string
		reason string
	}{
		{5, "userId", "line 5: no customer identifier"},
		{7, "products[].quantity", `line 7: column qty: "two" is not an integer`},
		{9, "timestamp", `line 9: column date: "not a date" does not match layout`},
	}
	for i, w := range want {
		r := sink.rejects[i]
		if r.Index != w.line || r.Field != w.field || !strings.HasPrefix(r.Reason, w.reason) || r.Origin != "import:orders.csv" || r.SourceID != "s1" || len(r.Payload) == 0 {
			t.Errorf("reject %d: %+v, want line %d field %s reason %q", i, r, w.line, w.field, w.reason)
		}
		if reported[i].Index != r.Index {
			t.Errorf("OnReject %d saw line %d", i, reported[i].Index)
		}
	}
}

// An import interrupted by a failed write resumes from its checkpoint and
// ends with exactly the events of an uninterrupted import.
func TestResumeAfterInterruption(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("order,customer,date,sku,qty,price\n")
	for i := range 500 {
		for j := range 1 + i%3 { // orders of 1-3 lines
			b.WriteString(strings.Join([]string{
				"o" + itoa(i), "c" + itoa(i%37), "2024-02-01 10:00:00", "S" + itoa(j), "1", "2.50",
			}, ",") + "\n")
		}
	}
	data := b.String()
	m := Mapping{
		Event: kiln.OrderCompleted, TimestampLayout: "2006-01-02 15:04:05",
		Fields: map[string]string{"userId": "customer", "timestamp": "date", "products[].sku": "sku", "products[].quantity": "qty:int", "products[].price": "price:number"},
		Order:  &OrderGrouping{IDColumn: "order", Revenue: true},
	}
	full := &memSink{}
	if _, err := Import(context.Background(), strings.NewReader(data), full, Options{Mapping: m, BatchSize: 40}); err != nil {
		t.Fatal(err)
	}

	sink := &memSink{failAt: 5}
	checkpoint := 0
	_, err := Import(context.Background(), strings.NewReader(data), sink, Options{Mapping: m, BatchSize: 40, Checkpoint: func(l int) error { checkpoint = l; return nil }})
	if err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("want the write failure, got %v", err)
	}
	if checkpoint == 0 {
		t.Fatal("no checkpoint before the failure")
	}
	res, err := Import(context.Background(), strings.NewReader(data), sink, Options{Mapping: m, BatchSize: 40, StartAfterLine: checkpoint})
	if err != nil {
		t.Fatal(err)
	}
	if res.New != res.Events {
		t.Errorf("resumed run re-sent %d already stored events", res.Events-res.New)
	}
	if len(sink.events) != len(full.events) || len(full.events) != 500 {
		t.Fatalf("resumed import has %d events, full import %d", len(sink.events), len(full.events))
	}
	for i := range full.events {
		a, b := full.events[i], sink.events[i]
		if a.MessageID != b.MessageID || len(a.Properties["products"].([]any)) != len(b.Properties["products"].([]any)) {
			t.Fatalf("event %d differs: %s/%v vs %s/%v", i, a.MessageID, a.Properties, b.MessageID, b.Properties)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestNDJSONAndGzip(t *testing.T) {
	t.Parallel()
	nd := `{"user":{"id":7},"type":"Visit Completed","at":1717236000,"store":"leeds","party":4,"spend":"52.40"}
{"user":{"id":8},"type":"Visit Completed","at":"bad","store":"york"}

not json
{"user":{},"type":"Visit Completed","at":1717236000}
`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(nd))
	zw.Close()
	m := Mapping{
		Format: FormatNDJSON, TimestampLayout: "unix",
		Fields: map[string]string{"userId": "user.id", "event": "type", "timestamp": "at", "store": "store", "properties.party_size": "party", "properties.spend": "spend:number"},
	}
	sink := &memSink{}
	res, err := Import(context.Background(), &gz, sink, Options{Mapping: m, FileName: "visits.ndjson.gz"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 1 || res.Rejects != 3 {
		t.Fatalf("result %+v rejects %+v", res, sink.rejects)
	}
	e := sink.events[0]
	if e.UserID != "7" || e.Name != kiln.VisitCompleted || e.Store != "leeds" || e.Properties["party_size"] != 4.0 || e.Properties["spend"] != 52.4 ||
		!e.Timestamp.Equal(time.Unix(1717236000, 0)) {
		t.Errorf("event %+v", e)
	}
	lines := []int{sink.rejects[0].Index, sink.rejects[1].Index, sink.rejects[2].Index}
	if lines[0] != 2 || lines[1] != 4 || lines[2] != 5 || !strings.Contains(sink.rejects[1].Reason, "not a JSON object") {
		t.Errorf("reject lines %v: %+v", lines, sink.rejects)
	}
}

func TestMappingValidation(t *testing.T) {
	cases := map[string]string{
		`{"fields":{"userId":"a"}}`:                                       "track events need a name",
		`{"event":"E","fields":{"properties.x":"a"}}`:                     "no identifier",
		`{"event":"E","fields":{"userid":"a"}}`:                           `unknown target "userid"`,
		`{"event":"E","fields":{"userId":"a","products[].sku":"b"}}`:      `needs "order" grouping`,
		`{"event":"E","format":"xlsx","fields":{"userId":"a"}}`:           `format "xlsx"`,
		`{"event":"E","fields":{"userId":"a"},"timeZone":"Mars/Olympus"}`: `timeZone "Mars/Olympus"`,
		`{"event":"E","fields":{"userId":"a"},"colour":"red"}`:            `unknown field "colour"`,
		`{"event":"E","fields":{"userId":"a"},"order":{}}`:                "idColumn is required",
	}
	for in, want := range cases {
		_, err := ParseMapping([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
	// A column the file lacks is named with the file's columns.
	_, err := Import(context.Background(), strings.NewReader("a,b\n1,2\n"), &memSink{}, Options{Mapping: Mapping{Event: "E", Fields: map[string]string{"userId": "customer"}}, FileName: "x.csv"})
	if err == nil || !strings.Contains(err.Error(), `no column "customer" in x.csv (columns: a, b)`) {
		t.Errorf("missing column: %v", err)
	}
	if tgt, col, err := ParseField("properties.revenue=dollars:number"); err != nil || tgt != "properties.revenue" || col != "dollars:number" {
		t.Errorf("ParseField: %q %q %v", tgt, col, err)
	}
	var fm Mapping
	fm.Event = "Visit Completed"
	for _, f := range []string{"userId=guest", "properties.spend=amount:number"} {
		if err := fm.SetField(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := fm.Validate(); err != nil || fm.Fields["properties.spend"] != "amount:number" {
		t.Errorf("SetField mapping %+v: %v", fm, err)
	}
	if err := fm.SetField("propertys.x=y"); err == nil || !strings.Contains(err.Error(), `unknown target "propertys.x"`) {
		t.Errorf("SetField with a bad target: %v", err)
	}
	if _, _, err := ParseField("revenue"); err == nil {
		t.Error("ParseField accepted a spec without =")
	}
	for _, name := range PresetNames() {
		m := preset(t, name)
		if err := m.Validate(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	if _, err := Preset("nope"); err == nil || !strings.Contains(err.Error(), "cdnow") {
		t.Errorf("unknown preset: %v", err)
	}
}

func TestSegmentArchive(t *testing.T) {
	t.Parallel()
	archive := `{"type":"identify","userId":"u1","traits":{"email":"A@B.example"},"messageId":"m1","timestamp":"2019-05-01T10:00:00Z"}
{"type":"track","userId":"u1","event":"Order Completed","messageId":"m2","timestamp":"2019-05-02T10:00:00Z","sentAt":"2019-05-02T11:00:00Z","properties":{"revenue":20}}
{"type":"track","userId":"u1","messageId":"m3"}
{"type":"page","anonymousId":"a1","name":"Home","timestamp":"2019-05-03T10:00:00Z"}
`
	sink := &memSink{}
	res, err := Import(context.Background(), strings.NewReader(archive), sink, Options{Mapping: Mapping{Format: FormatSegment}, SourceID: "s", FileName: "export.ndjson"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 3 || res.Rejects != 1 || sink.rejects[0].Index != 3 || sink.rejects[0].Field != "event" {
		t.Fatalf("result %+v rejects %+v", res, sink.rejects)
	}
	if e := sink.events[1]; e.MessageID != "m2" || !e.Timestamp.Equal(time.Date(2019, 5, 2, 10, 0, 0, 0, time.UTC)) || e.Properties["revenue"] != 20.0 {
		t.Errorf("track %+v", e)
	}
	if e := sink.events[0]; e.Anchor != "user_id:u1" || e.Traits["email"] != "A@B.example" {
		t.Errorf("identify %+v", e)
	}
	if e := sink.events[2]; e.Type != kiln.Page || !strings.HasPrefix(e.MessageID, "kiln-") || e.Anchor != "anonymous_id:a1" {
		t.Errorf("page %+v", e)
	}
	if _, err := ParseMapping([]byte(`{"format":"segment","fields":{"userId":"x"}}`)); err == nil {
		t.Error("segment format accepted field mappings")
	}
}

// A stray quote makes csv read several lines as one broken record; the
// reject names them, and the import goes on after it.
func TestBrokenCSVRecord(t *testing.T) {
	data := "customer,amount\nc1,1\nc2,\"unterminated\nc3,3\nc4,b\"ad\nc5,5\n"
	sink := &memSink{}
	res, err := Import(context.Background(), strings.NewReader(data), sink, Options{Mapping: Mapping{Event: "E", Fields: map[string]string{"userId": "customer", "properties.amount": "amount:number"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 2 || res.Rejects != 1 || sink.events[1].UserID != "c5" || res.LastLine != 6 {
		t.Fatalf("result %+v events %+v", res, sink.events)
	}
	if r := sink.rejects[0]; r.Index != 3 || !strings.Contains(r.Reason, "lines 3-5 are one broken record") {
		t.Errorf("reject %+v", r)
	}
}

func TestOverlongLine(t *testing.T) {
	data := `{"u":"a","e":"E"}` + "\n" + `{"u":"b","e":"` + strings.Repeat("x", 3<<20) + `"}` + "\n" + `{"u":"c","e":"E"}` + "\n"
	sink := &memSink{}
	res, err := Import(context.Background(), strings.NewReader(data), sink, Options{Mapping: Mapping{Format: FormatNDJSON, Fields: map[string]string{"userId": "u", "event": "e"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 2 || res.Rejects != 1 || sink.rejects[0].Index != 2 || !strings.HasPrefix(string(sink.rejects[0].Payload), `{"u":"b"`) || sink.events[1].UserID != "c" {
		t.Fatalf("result %+v, rejects %+v", res, sink.rejects)
	}
}

// genReader produces n CSV order lines on the fly, so the test file never
// sits in memory.
type genReader struct {
	n, i int
	buf  []byte
}

func (g *genReader) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && g.i <= g.n {
		if g.i == 0 {
			g.buf = append(g.buf, "order,customer,date,sku,qty,price\n"...)
		} else {
			g.buf = fmt.Appendf(g.buf, "o%d,c%d,2024-02-01 10:00:00,S%d,%d,1.25\n", g.i/3, g.i%5000, g.i%97, 1+g.i%4)
		}
		g.i++
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// Memory stays flat however long the file: the heap after a quarter of a
// long import is about what it is at the end.
func TestStreamingMemoryIsConstant(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 300,000 generated lines")
	}
	const lines = 300000
	var peakEarly, peakLate uint64
	var ms runtime.MemStats
	m := Mapping{
		Event: kiln.OrderCompleted, TimestampLayout: "2006-01-02 15:04:05",
		Fields: map[string]string{"userId": "customer", "timestamp": "date", "products[].sku": "sku", "products[].quantity": "qty:int", "products[].price": "price:number"},
		Order:  &OrderGrouping{IDColumn: "order", Revenue: true},
	}
	sink := &countSink{}
	res, err := Import(context.Background(), &genReader{n: lines}, sink, Options{Mapping: m, Progress: func(p Progress) {
		runtime.ReadMemStats(&ms)
		if p.Lines < lines/4 {
			peakEarly = max(peakEarly, ms.HeapAlloc)
		} else {
			peakLate = max(peakLate, ms.HeapAlloc)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != lines/3+1 || sink.events != res.Events {
		t.Fatalf("result %+v", res)
	}
	t.Logf("heap peak %d MB in the first quarter, %d MB after", peakEarly>>20, peakLate>>20)
	if peakLate > 2*peakEarly+16<<20 {
		t.Errorf("heap grew with the file: %d MB early, %d MB late", peakEarly>>20, peakLate>>20)
	}
}

// Rows holding values no store can hold (a date in 1600, a NUL character,
// nesting too deep) are rejected with their line and field, and the import
// goes on; an order with such a product is rejected whole.
func TestRowsNoStoreCanHoldAreRejected(t *testing.T) {
	t.Parallel()
	csvData := "customer,when,amount\n" +
		"c1,2024-01-02T10:00:00Z,1\n" +
		"c2,1600-01-02T10:00:00Z,2\n" +
		"c\x003,2024-01-02T10:00:00Z,3\n" +
		"c4,2024-01-02T10:00:00Z,4\n"
	m := Mapping{Event: "E", Fields: map[string]string{"userId": "customer", "timestamp": "when", "properties.amount": "amount:number"}}
	deep := strings.Repeat(`{"a":`, 250) + "1" + strings.Repeat("}", 250)
	ndjson := `{"u":"n1","x":1}` + "\n" + `{"u":"n2","x":` + deep + `}` + "\n" + `{"u":"n3","x":"fine"}` + "\n"
	nd := Mapping{Format: FormatNDJSON, Event: "E", Fields: map[string]string{"userId": "u", "properties.x": "x"}}
	archive := `{"type":"track","userId":"s1","event":"E","timestamp":"1600-01-01T00:00:00Z"}` + "\n" +
		`{"type":"track","userId":"s2","event":"E","timestamp":"2020-01-01T00:00:00Z"}` + "\n"
	orders := "order,customer,sku\n1,c1,A\n1,c1,B\x00\n2,c2,C\n"
	om := Mapping{Event: kiln.OrderCompleted, Fields: map[string]string{"userId": "customer", "products[].sku": "sku"}, Order: &OrderGrouping{IDColumn: "order"}}
	cases := []struct {
		name, data string
		mapping    Mapping
		events     int
		line       int
		field      string
		reason     string
	}{
		{"csv", csvData, m, 2, 3, "timestamp", "line 3: timestamp 1600-01-02T10:00:00Z is outside the years 1678-2261"},
		{"ndjson", ndjson, nd, 2, 2, "properties.x" + strings.Repeat(".a", 199), "is nested more than 200 levels deep"},
		{"segment archive", archive, Mapping{Format: FormatSegment}, 1, 1, "timestamp", "line 1: timestamp 1600-01-01T00:00:00Z is outside"},
		{"order", orders, om, 1, 2, "properties.products[1].sku", "line 2: order 1 (lines 2-3): properties.products[1].sku contains a NUL"},
	}
	for _, c := range cases {
		sink := &memSink{}
		res, err := Import(context.Background(), strings.NewReader(c.data), sink, Options{Mapping: c.mapping, FileName: c.name})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Events != c.events || len(sink.events) != c.events {
			t.Errorf("%s: %d events written, want %d: %+v", c.name, res.Events, c.events, sink.rejects)
		}
		if len(sink.rejects) == 0 {
			t.Fatalf("%s: no rejects", c.name)
		}
		r := sink.rejects[0]
		if r.Index != c.line || r.Field != c.field || !strings.Contains(r.Reason, c.reason) {
			t.Errorf("%s: reject line %d field %q reason %q, want line %d field %q reason %q", c.name, r.Index, r.Field, r.Reason, c.line, c.field, c.reason)
		}
	}
	// The csv's NUL row is rejected too, after the 1600 one.
	sink := &memSink{}
	Import(context.Background(), strings.NewReader(csvData), sink, Options{Mapping: m})
	if len(sink.rejects) != 2 || sink.rejects[1].Index != 4 || sink.rejects[1].Field != "userId" {
		t.Errorf("rejects %+v", sink.rejects)
	}
}
