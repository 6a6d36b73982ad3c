package identity

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestTable checks the index table against a Go map: many keys (several
// rehashes and arena chunks), the same value under different tags, long
// keys with two-byte lengths, and truncation with re-insertion.
func TestTable(t *testing.T) {
	t.Parallel()
	type key struct {
		tag byte
		s   string
	}
	rng := rand.New(rand.NewPCG(1, 1))
	tb := newTable(8)
	want := map[key]ref{}
	var order []key
	var half mark
	add := func(k key) {
		if o := tb.Find(k.tag, k.s); o != none {
			if want[k] != o {
				t.Fatalf("Find(%v) = %d, want %d", k, o, want[k])
			}
			return
		}
		if _, ok := want[k]; ok {
			t.Fatalf("Find(%v) = none, want %d", k, want[k])
		}
		o := tb.Add(k.tag, k.s)
		if rec := tb.rec(o); len(rec) != 8 || binary.LittleEndian.Uint64(rec) != 0 {
			t.Fatalf("new record %v", rec)
		}
		binary.LittleEndian.PutUint64(tb.rec(o), uint64(len(order))<<8|uint64(k.tag))
		want[k] = o
		order = append(order, k)
	}
	check := func() {
		t.Helper()
		if tb.Len() != len(order) {
			t.Fatalf("Len = %d, want %d", tb.Len(), len(order))
		}
		for k, o := range want {
			if got := tb.Find(k.tag, k.s); got != o {
				t.Fatalf("Find(%v) = %d, want %d", k, got, o)
			}
			if tag, s := tb.Key(o); tag != k.tag || s != k.s {
				t.Fatalf("Key(%d) = %d %q, want %v", o, tag, s, k)
			}
			if r := binary.LittleEndian.Uint64(tb.rec(o)); byte(r) != k.tag || !slices.Equal(order[r>>8:r>>8+1], []key{k}) {
				t.Fatalf("record of %v = %x", k, r)
			}
		}
		seen := 0
		tb.each(func(o ref) {
			if tag, s := tb.Key(o); want[key{tag, s}] != o {
				t.Fatalf("each gave %d (%q), not its entry", o, s)
			}
			seen++
		})
		if seen != len(order) {
			t.Fatalf("each visited %d entries, want %d", seen, len(order))
		}
	}
	for i := range 60_000 {
		if i == 30_000 {
			half = tb.Mark()
		}
		v := rng.IntN(40_000)
		s := fmt.Sprintf("v%d", v)
		switch i % 7 {
		case 1: // packs as a UUID, or not (upper case, a 'g')
			s = fmt.Sprintf("%08x-%04x-4%03x-b%03x-%012x", v, v%65536, v%4096, v%4096, v*7919)
			if v%5 == 0 {
				s = strings.ToUpper(s)
			} else if v%5 == 1 {
				s = s[:35] + "g"
			}
		case 2: // packs as a hex tail of various lengths, or not
			s = fmt.Sprintf("p_%x", uint64(v)*0x9e3779b97f4a7c15)
			s = s[:len(s)-v%4]
		case 3:
			s = fmt.Sprintf("%x", uint64(v)*0x9e3779b97f4a7c15)
		}
		if i%100 == 0 {
			s = strings.Repeat("x", 100+rng.IntN(300)) + s // length needs two varint bytes
		}
		add(key{byte(rng.IntN(5)), s})
	}
	check()
	// Roll back to the mark, then add again.
	var removed []key
	for _, k := range order[half.n:] {
		if want[k] < half.end {
			t.Fatalf("%v added after the mark has ref %d < %d", k, want[k], half.end)
		}
		delete(want, k)
		removed = append(removed, k)
	}
	order = order[:half.n]
	tb.Truncate(half)
	check()
	for _, k := range removed[:10] {
		if tb.Find(k.tag, k.s) != none {
			t.Fatalf("%v still found after Truncate", k)
		}
	}
	for _, k := range removed {
		add(k)
	}
	check()
	tb.Truncate(mark{})
	if tb.Len() != 0 || tb.Find(order[0].tag, order[0].s) != none {
		t.Fatal("Truncate to the start left keys")
	}
}

func TestPack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		size int // packed size, 0 if it does not pack
	}{
		{"5f1c2b3a-9c4e-4f1a-b2d3-0123456789ab", 16},
		{"5F1C2B3A-9C4E-4F1A-B2D3-0123456789AB", 0},
		{"5f1c2b3a-9c4e-4f1a-b2d3-0123456789a", 0},
		{"5f1c2b3a-9c4e-4f1a-b2d3_0123456789ab", 0},
		{"p_68e997b2dce3e81eda9a", 1 + 2 + 10},
		{"p_68e997b2dce3e81eda9", 1 + 3 + 9}, // odd tail: one hex digit stays in the prefix
		{"507f1f77bcf86cd799439011", 1 + 12},
		{"0123456789abcde", 0}, // under minHexTail
		{"ann@example.com", 0},
		{"", 0},
		{strings.Repeat("a", 200), 0}, // too long to pack
	} {
		var buf [maxPacked]byte
		tag, b, ok := pack(&buf, 3, tc.s)
		if ok != (tc.size > 0) || ok && len(b) != tc.size {
			t.Errorf("pack(%q) = %v, %d bytes; want %d bytes", tc.s, ok, len(b), tc.size)
		}
		if !ok {
			continue
		}
		if gt, gs := unpack(tag, b); gt != 3 || gs != tc.s {
			t.Errorf("unpack(pack(%q)) = %d, %q", tc.s, gt, gs)
		}
	}
}
