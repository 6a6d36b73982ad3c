package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	fastjson "github.com/goccy/go-json"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/demo"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/internal/payloadjson"
)

// viaJSON is what an event's maps read back as when stored as JSON, the
// form before the binary one: the reference the binary form must match.
func viaJSON(t testing.TB, e *kiln.Event) (kiln.Event, error) {
	t.Helper()
	j, err := payloadjson.Append(nil, e)
	if err != nil {
		return kiln.Event{}, err
	}
	var out kiln.Event
	if err := newPayloadDecoder().decodeInto(j, &out); err != nil {
		t.Fatalf("decoding the JSON form %s: %v", j, err)
	}
	return out, nil
}

// viaBinary is what the maps read back as when stored in binary.
func viaBinary(t testing.TB, d *payloadDecoder, e *kiln.Event) (kiln.Event, []byte, error) {
	t.Helper()
	b, err := appendBinaryPayload(nil, e)
	if err != nil {
		return kiln.Event{}, nil, err
	}
	var out kiln.Event
	if err := d.decodeInto(b, &out); err != nil {
		t.Fatalf("decoding the binary form %x: %v", b, err)
	}
	return out, b, nil
}

func samePayload(a, b kiln.Event) bool {
	return reflect.DeepEqual(a.Properties, b.Properties) && reflect.DeepEqual(a.Traits, b.Traits) &&
		reflect.DeepEqual(a.Context, b.Context)
}

// randValue makes a random value of the kinds events carry, nested up to
// depth more levels.
func randValue(r *rand.Rand, depth int) any {
	k := r.IntN(16)
	if depth <= 0 && k >= 12 {
		k = r.IntN(12)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return randString(r)
	case 3:
		// Any finite float, from subnormals to the largest.
		for {
			f := math.Float64frombits(r.Uint64())
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
		}
	case 4:
		return [...]float64{0, math.Copysign(0, -1), 1, -1, 127, 128, -128, 1 << 53, -(1 << 53), 1<<53 + 2,
			1e21, 1e-7, 5e-324, math.MaxFloat64, -math.MaxFloat64, 0.1, 19.95, 1e100}[r.IntN(18)]
	case 5:
		return float64(r.IntN(2000) - 1000)
	case 6:
		return [...]any{int(r.IntN(1000)), int64(r.Int64()), int32(r.Int32()), uint64(r.Uint64()), int8(-3),
			uint(7), uint16(9), float32(r.Float32() * 100), float32(0.1)}[r.IntN(9)]
	case 7:
		return [...]json.Number{"3.25", "", "-0", "1e5", "12345678901234567890", "0.000001"}[r.IntN(6)]
	case 8:
		return []string{randString(r), randString(r)}
	case 9:
		return [...]any{[]any(nil), []any{}, map[string]any{}, map[string]any(nil), []string(nil)}[r.IntN(5)]
	case 10:
		return time.Unix(r.Int64N(1<<33), r.Int64N(1e9)).UTC()
	case 11:
		return strings.Repeat(randString(r), r.IntN(40)) // long strings too
	case 12, 13:
		m := map[string]any{}
		for range r.IntN(6) {
			setKey(m, randString(r), randValue(r, depth-1))
		}
		return m
	default:
		a := make([]any, r.IntN(6))
		for i := range a {
			a[i] = randValue(r, depth-1)
		}
		return a
	}
}

func randString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(12) {
		switch r.IntN(8) {
		case 0:
			b.WriteRune(rune(r.IntN(0x20))) // control characters
		case 1:
			b.WriteRune(rune(0x80 + r.IntN(0x10FFFF-0x80))) // anything, surrogates become U+FFFD
		case 2:
			b.WriteString([...]string{"☕", "𝄞", "é", "\"", "\\", "\u2028", "\x00"}[r.IntN(7)])
		case 3:
			b.WriteByte(byte(0x80 + r.IntN(0x80))) // invalid UTF-8
		default:
			b.WriteByte(byte('a' + r.IntN(26)))
		}
	}
	return b.String()
}

func randMap(r *rand.Rand) map[string]any {
	if r.IntN(4) == 0 {
		return nil
	}
	m := map[string]any{}
	for range r.IntN(8) {
		setKey(m, randString(r), randValue(r, 4))
	}
	return m
}

// setKey sets m[k] unless another key already stored reads back as the
// same one (invalid UTF-8 becomes U+FFFD): which of the two would win is
// down to map order, in either form.
func setKey(m map[string]any, k string, v any) {
	for old := range m {
		if old != k && jsonSafeString(old) == jsonSafeString(k) {
			return
		}
	}
	m[k] = v
}

// Random events read back from the binary form exactly as they read back
// from the JSON form.
func TestBinaryPayloadMatchesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	d := newPayloadDecoder()
	for i := range 3000 {
		e := kiln.Event{Properties: randMap(r), Traits: randMap(r), Context: randMap(r)}
		want, jerr := viaJSON(t, &e)
		got, bin, berr := viaBinary(t, d, &e)
		if (jerr == nil) != (berr == nil) {
			t.Fatalf("event %d: JSON form error %v, binary form error %v\n%#v", i, jerr, berr, e)
		}
		if jerr != nil {
			continue
		}
		if !samePayload(got, want) {
			t.Fatalf("event %d: binary form reads back differently\n got %#v\nwant %#v", i, got, want)
		}
		// Decoding again with the same decoder (its string cache now
		// warm) gives the same values.
		var again kiln.Event
		if err := d.decodeInto(bin, &again); err != nil || !samePayload(again, want) {
			t.Fatalf("event %d: second decode: %v", i, err)
		}
	}
}

func TestBinaryPayloadEdgeCases(t *testing.T) {
	d := newPayloadDecoder()
	type custom struct {
		A int `json:"a"`
	}
	deep := any("leaf")
	for range maxPayloadDepth - 2 {
		deep = []any{deep}
	}
	cases := map[string]kiln.Event{
		"empty":       {},
		"empty maps":  {Properties: map[string]any{}, Traits: map[string]any{}},
		"only traits": {Traits: map[string]any{"email": "a@b.c"}},
		"unicode keys": {Properties: map[string]any{"": "empty key", "café ☕": "𝄞", "bad\xffkey": 1.0,
			"ctl\x00\x1f": "\u2028\u2029"}},
		"numbers": {Properties: map[string]any{"neg zero": math.Copysign(0, -1), "tiny": 5e-324, "big": math.MaxFloat64,
			"2^53": float64(1 << 53), "2^53+2": float64(1<<53 + 2), "-2^53": -float64(1 << 53), "half": 0.5, "-1": -1.0,
			"127": 127.0, "128": 128.0, "u64": uint64(math.MaxUint64), "i64": int64(math.MinInt64)}},
		"json numbers": {Properties: map[string]any{"a": json.Number("1.5"), "b": json.Number(""), "c": json.Number("-0"),
			"d": json.Number("1E+2"), "e": json.Number("true"), "f": json.Number(`{"x":[1]}`)}},
		"other types": {Properties: map[string]any{"t": time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), "s": custom{A: 3},
			"ms": map[string]string{"k": "v"}, "is": []int{1, 2}, "nested nil": map[string]any{"x": []any(nil)}}},
		"deep":      {Context: map[string]any{"d": deep}},
		"long":      {Properties: map[string]any{strings.Repeat("k", 300): strings.Repeat("v☕", 5000)}},
		"63 and 64": {Properties: map[string]any{"a": strings.Repeat("x", 63), "b": strings.Repeat("x", 64), "c": strings.Repeat("x", 65)}},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := viaJSON(t, &e)
			if err != nil {
				t.Fatalf("JSON form: %v", err)
			}
			got, _, err := viaBinary(t, d, &e)
			if err != nil {
				t.Fatalf("binary form: %v", err)
			}
			if !samePayload(got, want) {
				t.Fatalf("reads back differently\n got %#v\nwant %#v", got, want)
			}
		})
	}
	// -0 keeps its sign, as JSON's "-0" does.
	e := cases["numbers"]
	got, _, _ := viaBinary(t, d, &e)
	if z := got.Properties["neg zero"].(float64); !math.Signbit(z) {
		t.Errorf("-0 read back as %v", z)
	}
}

// What the JSON form could not store, the binary form refuses too, naming
// where it is; values nested deeper than the JSON readers accept are
// refused rather than stored unreadable.
func TestBinaryPayloadRefuses(t *testing.T) {
	deep := any(1.0)
	for range maxPayloadDepth + 1 {
		deep = map[string]any{"x": deep}
	}
	for name, c := range map[string]struct {
		v    any
		want string
	}{
		"NaN":            {math.NaN(), `properties "v": unsupported number NaN`},
		"Inf":            {map[string]any{"in": []any{1.0, math.Inf(-1)}}, `properties "v": "in": [1]: unsupported number -Inf`},
		"bad number":     {json.Number("1x"), `invalid number "1x"`},
		"huge number":    {json.Number("1e400"), `properties "v"`},
		"channel":        {make(chan int), `unsupported type`},
		"float32 NaN":    {float32(math.NaN()), `unsupported number NaN`},
		"too deep":       {deep, `nested more than 10000 levels deep`},
		"too deep array": {[]any{deep}, `nested more than 10000 levels deep`},
	} {
		t.Run(name, func(t *testing.T) {
			e := kiln.Event{Properties: map[string]any{"v": c.v}}
			_, err := appendBinaryPayload(nil, &e)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// Damaged payloads are errors, never panics or huge allocations.
func TestBinaryPayloadCorrupt(t *testing.T) {
	e := kiln.Event{Properties: map[string]any{"a": "x", "list": []any{1.0, 2.5, "long string of text over sixty-four bytes ........................"}}}
	good, err := appendBinaryPayload(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	d := newPayloadDecoder()
	for n := 1; n < len(good); n++ {
		var out kiln.Event
		if err := d.decodeInto(good[:n], &out); !errors.Is(err, errPayloadCorrupt) {
			t.Errorf("truncated to %d bytes: error %v, want a corrupt payload", n, err)
		}
	}
	for name, b := range map[string][]byte{
		"trailing":     append(append([]byte{}, good...), 0),
		"flags":        {payloadV1, 0x08},
		"tag":          {payloadV1, flagProperties, 1, 1, 'k', 0x3f},
		"huge count":   {payloadV1, flagProperties, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"huge array":   {payloadV1, flagProperties, 1, 1, 'k', tagArray, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"huge string":  {payloadV1, flagProperties, 1, 1, 'k', tagString, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad varint":   {payloadV1, flagProperties, 1, 1, 'k', tagInt, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"short float":  {payloadV1, flagProperties, 1, 1, 'k', tagFloat, 1, 2},
		"deep":         append(append([]byte{payloadV1, flagContext, 1, 1, 'k'}, deepArrays(maxPayloadDepth+5)...), tagNull),
		"version only": {payloadV1},
	} {
		var out kiln.Event
		if err := d.decodeInto(b, &out); !errors.Is(err, errPayloadCorrupt) {
			t.Errorf("%s: error %v, want a corrupt payload", name, err)
		}
	}
}

func deepArrays(n int) []byte {
	b := make([]byte, 0, 2*n)
	for range n {
		b = append(b, tagArray, 1)
	}
	return b
}

// FuzzPayloadDecode feeds the decoder arbitrary bytes: it must return an
// error or values that survive a round trip, and never panic.
func FuzzPayloadDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		e := kiln.Event{Properties: randMap(r), Traits: randMap(r), Context: randMap(r)}
		if b, err := appendBinaryPayload(nil, &e); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{payloadV1, flagProperties, 1, 1, 'k', tagArray, 2, tagSmallInt, tagShortStr | 1, 'x'})
	f.Add([]byte(`{"properties":{"a":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := newPayloadDecoder()
		var e kiln.Event
		if err := d.decodeInto(b, &e); err != nil {
			return
		}
		if len(b) == 0 || b[0] != payloadV1 {
			return // JSON: goccy's business
		}
		// What decoded must encode and decode to the same values (the
		// maps read as empty are left out when re-encoding).
		again, _, err := viaBinary(t, d, &e)
		if err != nil {
			return // e.g. NaN bits in a float: the encoder refuses them
		}
		// Garbage may hold invalid UTF-8, which the encoder replaces.
		for _, p := range []*map[string]any{&e.Properties, &e.Traits, &e.Context} {
			if len(*p) == 0 {
				*p = nil
				continue
			}
			v, ok := sanitized(*p)
			if !ok {
				return // two keys became one: which value wins is map order
			}
			*p = v.(map[string]any)
		}
		if !samePayload(again, e) {
			t.Fatalf("round trip differs\n got %#v\nwant %#v", again, e)
		}
	})
}

// sanitized is v with its strings as the encoder writes them; false if
// two keys of a map become the same.
func sanitized(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		return jsonSafeString(x), true
	case []any:
		for i := range x {
			var ok bool
			if x[i], ok = sanitized(x[i]); !ok {
				return nil, false
			}
		}
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			k = jsonSafeString(k)
			if _, dup := m[k]; dup {
				return nil, false
			}
			var ok bool
			if m[k], ok = sanitized(e); !ok {
				return nil, false
			}
		}
		return m, true
	}
	return v, true
}

// demoPayloads returns the encoded payloads, binary and JSON, of n demo
// shop and restaurant events of the given names (all names when none).
func demoPayloads(tb testing.TB, n int, names ...string) (bin, js [][]byte) {
	tb.Helper()
	stop := errors.New("enough")
	_, err := demo.Generate(demo.Config{Seed: 1, Customers: 500}, func(e kiln.Event) error {
		if len(names) > 0 && !contains(names, e.Name) {
			return nil
		}
		b, err := appendBinaryPayload(nil, &e)
		if err != nil {
			return err
		}
		j, err := payloadjson.Append(nil, &e)
		if err != nil {
			return err
		}
		bin, js = append(bin, b), append(js, j)
		if len(bin) == n {
			return stop
		}
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		tb.Fatal(err)
	}
	return bin, js
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Real event payloads read back the same from both forms.
func TestBinaryPayloadDemoEvents(t *testing.T) {
	bin, js := demoPayloads(t, 5000)
	d := newPayloadDecoder()
	var sizeB, sizeJ int
	for i := range bin {
		var a, b kiln.Event
		if err := d.decodeInto(bin[i], &a); err != nil {
			t.Fatal(err)
		}
		if err := fastjson.Unmarshal(js[i], &b); err != nil {
			t.Fatal(err)
		}
		if !samePayload(a, b) {
			t.Fatalf("event %d reads back differently\n got %#v\nwant %#v", i, a, b)
		}
		sizeB += len(bin[i])
		sizeJ += len(js[i])
	}
	t.Logf("%d demo payloads: binary %d bytes, JSON %d bytes (%.0f%%)", len(bin), sizeB, sizeJ, 100*float64(sizeB)/float64(sizeJ))
}

// BenchmarkPayloadDecode compares decoding realistic order payloads (and
// the demo's mix of events) from the binary form and from JSON.
//
//	go test -run '^$' -bench PayloadDecode -benchmem ./store/sqlite/
func BenchmarkPayloadDecode(b *testing.B) {
	for _, set := range []struct {
		name  string
		names []string
	}{{"orders", []string{kiln.OrderCompleted}}, {"mix", nil}} {
		bin, js := demoPayloads(b, 2000, set.names...)
		b.Run(set.name+"/binary", func(b *testing.B) {
			d := newPayloadDecoder()
			i := 0
			defer reportCPU(b)()
			for b.Loop() {
				var e kiln.Event
				if err := d.decodeInto(bin[i%len(bin)], &e); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(set.name+"/goccy-json", func(b *testing.B) {
			i := 0
			defer reportCPU(b)()
			for b.Loop() {
				var pl payload
				if err := fastjson.Unmarshal(js[i%len(js)], &pl); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// reportCPU reports the CPU time (all threads, the garbage collector's
// too) per op when the returned function is called: on a shared machine
// it varies less than the elapsed time.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}

// BenchmarkPayloadEncode compares writing the two forms.
func BenchmarkPayloadEncode(b *testing.B) {
	var evs []kiln.Event
	stop := errors.New("enough")
	demo.Generate(demo.Config{Seed: 1, Customers: 500}, func(e kiln.Event) error {
		evs = append(evs, e)
		if len(evs) == 2000 {
			return stop
		}
		return nil
	})
	b.Run("binary", func(b *testing.B) {
		var buf []byte
		i := 0
		for b.Loop() {
			buf, _ = appendBinaryPayload(buf[:0], &evs[i%len(evs)])
			i++
		}
	})
	b.Run("json", func(b *testing.B) {
		var buf []byte
		i := 0
		for b.Loop() {
			buf, _ = payloadjson.Append(buf[:0], &evs[i%len(evs)])
			i++
		}
	})
}

// Rows written as JSON (before the binary form) and rows written now read
// back as the same values, through every read of the log.
func TestStoredPayloadBothForms(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e := kiln.Event{MessageID: "m-bin", SourceID: "web", Type: kiln.Track, Name: kiln.OrderCompleted, Anchor: "user_id:1",
		Timestamp: at, ReceivedAt: at,
		Properties: map[string]any{"qty": 2, "price": 19.95, "tags": []string{"a", "b"}, "n": json.Number("7"),
			"products": []any{map[string]any{"sku": "X-1", "quantity": int64(3)}}, "gift": false, "none": nil},
		Traits:  map[string]any{"email": "a@b.c", "name": "Zoë"},
		Context: map[string]any{"campaign": map[string]any{"source": "newsletter"}}}
	want := map[string]any{"qty": 2.0, "price": 19.95, "tags": []any{"a", "b"}, "n": 7.0,
		"products": []any{map[string]any{"sku": "X-1", "quantity": 3.0}}, "gift": false, "none": nil}
	if _, err := db.Append(ctx, store.Batch{Events: []kiln.Event{e}}); err != nil {
		t.Fatal(err)
	}
	// The same event as the JSON form stored it, with the next seq.
	j, err := payloadjson.Append(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, insertEvent, 2, "m-json", e.SourceID, string(e.Type), e.Name, "", "", "", "",
		e.Anchor, at.UnixNano(), at.UnixNano(), "", string(j)); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	rows, err := db.r.QueryContext(ctx, "SELECT typeof(payload) FROM events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, k)
	}
	rows.Close()
	if !reflect.DeepEqual(kinds, []string{"blob", "text"}) {
		t.Fatalf("stored payload types %v, want a blob (binary) then text (JSON)", kinds)
	}
	read, err := db.ReadEvents(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	byAnchor, err := db.EventsByAnchor(ctx, []string{"user_id:1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var scanned []kiln.Event
	if err := db.ScanLog(ctx, 0, 2, func(evs []kiln.Event) error {
		scanned = append(scanned, evs...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(read) != 2 || len(byAnchor) != 2 || len(scanned) != 2 {
		t.Fatalf("read %d, %d and %d events, want 2", len(read), len(byAnchor), len(scanned))
	}
	for _, got := range slices.Concat(read, byAnchor, scanned) {
		if !reflect.DeepEqual(got.Properties, want) {
			t.Errorf("event %d (%s): properties %#v, want %#v", got.Seq, got.MessageID, got.Properties, want)
		}
		if !reflect.DeepEqual(got.Traits, e.Traits) || !reflect.DeepEqual(got.Context, e.Context) {
			t.Errorf("event %d (%s): traits %#v context %#v", got.Seq, got.MessageID, got.Traits, got.Context)
		}
	}
}

// A damaged payload stops a scan with an error naming the event; it does
// not panic or skip the event.
func TestScanLogCorruptPayload(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var evs []kiln.Event
	for i := range 5000 {
		evs = append(evs, kiln.Event{MessageID: fmt.Sprint("m", i), SourceID: "web", Type: kiln.Track, Anchor: "user_id:1",
			Timestamp: at, ReceivedAt: at, Properties: map[string]any{"i": float64(i)}})
	}
	if _, err := db.Append(ctx, store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, "UPDATE events SET payload = ? WHERE seq = 4500", []byte{payloadV1, flagProperties, 9}); err != nil {
		t.Fatal(err)
	}
	seen := 0
	err := db.ScanLog(ctx, 0, 5000, func(evs []kiln.Event) error {
		for _, e := range evs {
			if e.Properties["i"] != float64(e.Seq-1) {
				t.Errorf("event %d: properties %v", e.Seq, e.Properties)
			}
		}
		seen += len(evs)
		return nil
	})
	if !errors.Is(err, errPayloadCorrupt) || !strings.Contains(err.Error(), "event 4500") {
		t.Fatalf("error %v, want a corrupt payload error naming event 4500", err)
	}
	if seen >= 4500 {
		t.Errorf("fn saw %d events, including the damaged one", seen)
	}
}
