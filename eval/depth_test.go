package eval

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/rule"
)

// Definitions nested as deeply as rule allows compile, evaluate, explain
// and evaluate naively: every recursive walk copes with rule.MaxDepth.
func TestMaxDepth(t *testing.T) {
	n := rule.MaxDepth
	src := `trait orders = count of "A" where ` + strings.Repeat("not ", n) + `properties.x = 1 all time
trait score = orders` + strings.Repeat(" + 1", n) + `
segment deep { ` + strings.Repeat("orders >= 1 and (", n) + "score > 200" + strings.Repeat(")", n) + ` }
segment nots { ` + strings.Repeat("not ", n) + `in segment deep }
`
	p := mustCompile(t, src, time.UTC)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	st := p.NewState()
	// n is even, so the nots cancel out: x = 1 matches, and nots is deep.
	ev := track("A", now, map[string]any{"x": 1.0})
	res := p.Apply(st, &Profile{}, ev, now)
	if changed(res, "deep") != "entered" || changed(res, "nots") != "entered" {
		t.Fatalf("changes %+v, want deep and nots entered", res.Changed)
	}
	if v := p.TraitValues(st)["score"]; v != nv(strconv.Itoa(n+1)) {
		t.Errorf("score %v, want %d", v, n+1)
	}
	node, err := p.Explain(st, &Profile{}, "nots", now)
	if err != nil || !node.Holds {
		t.Fatalf("explain: %+v %v", node, err)
	}
	depth := 0
	for ; len(node.Children) > 0; node = node.Children[len(node.Children)-1] {
		depth++
	}
	if depth != n {
		t.Errorf("explained %d levels, want %d", depth, n)
	}
	if snap := p.Naive([]*kiln.Event{ev}, &Profile{}, now); !snap.Segments["nots"] || snap.Traits["score"] != nv(strconv.Itoa(n+1)) {
		t.Errorf("naive: %+v, want nots and score %d", snap, n+1)
	}
}
