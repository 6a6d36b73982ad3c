package library

import (
	"testing"

	"github.com/kiln-cdp/kiln/rule"
)

func TestLibraryCompiles(t *testing.T) {
	for _, name := range append(Names(), "all") {
		src := All()
		if name != "all" {
			src = Source(name)
		}
		s, err := rule.Parse(src)
		if err != nil {
			t.Fatalf("%s:%v", name, err)
		}
		info, err := rule.Check(s, rule.DemoSchema)
		if err != nil {
			t.Fatalf("%s:\n%v", name, err)
		}
		if len(info.SegmentOrder) < 10 {
			t.Errorf("%s: only %d segments", name, len(info.SegmentOrder))
		}
		// The canonical form parses back to the same text.
		again, err := rule.Parse(rule.Format(s))
		if err != nil {
			t.Fatalf("%s: formatted text does not parse: %v", name, err)
		}
		if rule.Format(again) != rule.Format(s) {
			t.Errorf("%s: format is not stable", name)
		}
	}
	if len(Names()) < 2 {
		t.Fatalf("library has %v", Names())
	}
}
