package identity

import (
	"fmt"
	"math/rand/v2"
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
	tb := newTable()
	want := map[key]int{}
	var order []key
	add := func(k key) {
		if n := tb.Find(k.tag, k.s); n >= 0 {
			if want[k] != n {
				t.Fatalf("Find(%v) = %d, want %d", k, n, want[k])
			}
			return
		}
		if _, ok := want[k]; ok {
			t.Fatalf("Find(%v) = -1, want %d", k, want[k])
		}
		n := tb.Add(k.tag, k.s)
		if n != len(order) {
			t.Fatalf("Add numbered %d, want %d", n, len(order))
		}
		want[k] = n
		order = append(order, k)
	}
	for i := range 60_000 {
		s := fmt.Sprintf("v%d", rng.IntN(40_000))
		if i%100 == 0 {
			s = strings.Repeat("x", 100+rng.IntN(300)) + s // length needs two varint bytes
		}
		add(key{byte(rng.IntN(5)), s})
	}
	check := func() {
		t.Helper()
		if tb.Len() != len(order) {
			t.Fatalf("Len = %d, want %d", tb.Len(), len(order))
		}
		for k, n := range want {
			if got := tb.Find(k.tag, k.s); got != n {
				t.Fatalf("Find(%v) = %d, want %d", k, got, n)
			}
			if tag, s := tb.Key(n); tag != k.tag || s != k.s {
				t.Fatalf("Key(%d) = %d %q, want %v", n, tag, s, k)
			}
		}
	}
	check()
	// Roll back to half, then add again.
	half := len(order) / 2
	for _, k := range order[half:] {
		delete(want, k)
	}
	removed := order[half:]
	order = order[:half]
	tb.Truncate(half)
	check()
	for _, k := range removed[:10] {
		if tb.Find(k.tag, k.s) >= 0 {
			t.Fatalf("%v still found after Truncate", k)
		}
	}
	for _, k := range removed {
		add(k)
	}
	check()
	tb.Truncate(0)
	if tb.Len() != 0 || tb.Find(order[0].tag, order[0].s) >= 0 {
		t.Fatal("Truncate(0) left keys")
	}
}
