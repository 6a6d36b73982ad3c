package ui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/eval"
	"github.com/kiln-cdp/kiln/rule"
	"github.com/kiln-cdp/kiln/store"
)

// sampleRow is one profile a previewed segment would hold.
type sampleRow struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Ident string `json:"ident"`
}

// sampleMembers finds up to want profiles that the definition in text
// would put in segment. The engine's dry run only counts, so this
// evaluates the whole definition set from scratch with eval's naive
// evaluator (the reference the engine is tested against) over profiles
// read from a random point of the profile list, until it has enough or
// the budget is spent. It is a sample for a person to look at, not a
// count; scanned says how many profiles it looked at. A segment that
// ranks profiles among others (rank of, in top P%) has no sample: one
// profile's membership depends on all of them.
func (s *Server) sampleMembers(ctx context.Context, text, segment string, want int, budget time.Duration) (rows []sampleRow, scanned int, err error) {
	deadline := time.Now().Add(budget)
	set, err := rule.Parse(text)
	if err != nil {
		return nil, 0, err
	}
	mine := map[string]bool{}
	for _, d := range set.Defs {
		mine[d.Name] = true
	}
	var static []string
	for _, d := range s.eng.Definitions() {
		if mine[d.Name] {
			continue
		}
		other, err := rule.Parse(d.Text)
		if err != nil {
			return nil, 0, err
		}
		set.Defs = append(set.Defs, other.Defs...)
		if d.Static {
			static = append(static, d.Name)
		}
	}
	prog, err := eval.Compile(set, eval.Options{Location: s.loc})
	if err != nil {
		return nil, 0, err
	}
	if info, err := rule.Check(set, nil); err == nil {
		need, err := eval.Compile(&rule.Set{Defs: info.Needs(set, rule.DefKey{Kind: rule.KindSegment, Name: segment})}, eval.Options{Location: s.loc})
		if err == nil && need.Ranked() {
			// A ranking needs every profile's value, not a sample's: the
			// dry run's count is exact, the sample is left out.
			return nil, 0, nil
		}
	}
	lists := map[string][]string{} // profile -> static segments listing it
	for _, seg := range static {
		ids, err := s.st.StaticMembers(ctx, seg)
		if err != nil {
			return nil, 0, err
		}
		for _, id := range ids {
			lists[id] = append(lists[id], seg)
		}
	}

	b := make([]byte, 2)
	_, _ = rand.Read(b)
	start := "p_" + hex.EncodeToString(b)
	cursor, wrapped := start, false
	now := s.now()
	for len(rows) < want && time.Now().Before(deadline) {
		ps, next, err := s.st.ListProfiles(ctx, store.ProfileQuery{After: cursor, Limit: 50})
		if err != nil {
			return nil, scanned, err
		}
		for i := range ps {
			p := &ps[i]
			if wrapped && p.ID > start {
				return rows, scanned, nil // went all the way round
			}
			cursor = p.ID
			scanned++
			anchors := make([]string, len(p.Identities))
			for j, id := range p.Identities {
				anchors[j] = id.Identifier.String()
			}
			evs, err := s.st.EventsByAnchor(ctx, anchors, 0)
			if err != nil {
				return nil, scanned, err
			}
			ptrs := make([]*kiln.Event, len(evs))
			for j := range evs {
				ptrs[j] = &evs[j]
			}
			// The naive evaluator keeps slice order for events at the same
			// instant: give it log order.
			slices.SortStableFunc(ptrs, func(a, b *kiln.Event) int { return int(a.Seq - b.Seq) })
			prof := eval.Profile{Traits: p.Traits, Static: lists[p.ID]}
			if prog.Naive(ptrs, &prof, now).Segments[segment] {
				name, ident := profileLabel(p)
				rows = append(rows, sampleRow{ID: p.ID, Name: name, Ident: ident})
				if len(rows) == want {
					return rows, scanned, nil
				}
			}
			if time.Now().After(deadline) {
				return rows, scanned, nil
			}
		}
		if next == "" || len(ps) == 0 {
			if wrapped {
				return rows, scanned, nil
			}
			cursor, wrapped = "", true
		}
	}
	return rows, scanned, nil
}
