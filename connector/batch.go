package connector

import (
	"context"

	"github.com/kiln-cdp/kiln"
)

// Pending tracks the results of one Deliver call: connectors mark changes
// as they learn their fate, and Finish fails whatever is left.
type Pending struct {
	Results []Result
	done    []bool
}

// NewPending starts results for n changes.
func NewPending(n int) *Pending {
	return &Pending{Results: make([]Result, n), done: make([]bool, n)}
}

// OK marks changes i as delivered.
func (p *Pending) OK(idx ...int) {
	for _, i := range idx {
		p.Results[i], p.done[i] = Result{}, true
	}
}

// Fail marks changes idx as failed with err; a nil err marks them delivered.
func (p *Pending) Fail(err error, idx ...int) {
	for _, i := range idx {
		p.Results[i], p.done[i] = Result{Err: err}, true
	}
}

// Done reports whether change i has a result.
func (p *Pending) Done(i int) bool { return p.done[i] }

// Finish fails every change without a result: with a retryable
// cancellation error when ctx ended, else as an internal error (a connector
// bug must not silently drop a change).
func (p *Pending) Finish(ctx context.Context, vendor string) []Result {
	for i, d := range p.done {
		if d {
			continue
		}
		if ctx.Err() != nil {
			p.Results[i] = Result{Err: TransportError(ctx, vendor, "", ctx.Err())}
		} else {
			p.Results[i] = Result{Err: &Error{Vendor: vendor, Code: kiln.EInternal, Retryable: true,
				Message: "the connector returned no result for this change"}}
		}
	}
	return p.Results
}

// Group is a run of changes with the same op and segment.
type Group struct {
	Op      Op
	Segment string
	Idx     []int // indices into the Deliver slice, in order
}

// GroupChanges splits changes by (op, segment), keeping first-seen order,
// then chunks each group to at most max changes.
func GroupChanges(changes []Change, max int) []Group {
	type key struct {
		op  Op
		seg string
	}
	var order []key
	m := map[key][]int{}
	for i, c := range changes {
		k := key{c.Op, c.Segment}
		if c.Op == OpUpsert {
			k.seg = ""
		}
		if _, ok := m[k]; !ok {
			order = append(order, k)
		}
		m[k] = append(m[k], i)
	}
	var out []Group
	for _, k := range order {
		for _, ch := range Chunk(m[k], max) {
			out = append(out, Group{Op: k.op, Segment: k.seg, Idx: ch})
		}
	}
	return out
}

// Chunk splits idx into runs of at most n.
func Chunk(idx []int, n int) [][]int {
	if n < 1 {
		n = 1
	}
	var out [][]int
	for len(idx) > n {
		out = append(out, idx[:n:n])
		idx = idx[n:]
	}
	if len(idx) > 0 {
		out = append(out, idx)
	}
	return out
}

// CheckChange returns a permanent error for a change no connector can act
// on: an unknown op, or add/remove without a segment.
func CheckChange(vendor string, c Change) error {
	switch c.Op {
	case OpAdd, OpRemove:
		if c.Segment == "" {
			return Invalid(vendor, "%s change without a segment", c.Op)
		}
	case OpUpsert:
	default:
		return Invalid(vendor, "unknown op %q (want add, remove or upsert)", c.Op)
	}
	return nil
}
