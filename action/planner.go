package action

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// Planner turns transitions into outbox items (engine.Planner). It reads
// the enabled automations from memory, so planning costs no I/O inside
// the engine's transaction; Reload refreshes them after a change.
type Planner struct {
	st      store.Outbox
	now     func() time.Time
	autos   atomic.Pointer[map[string][]store.Automation] // by segment, enabled only
	planned atomic.Bool                                   // items planned since the last Planned call
}

// NewPlanner returns a planner over the automations in st; call Reload
// before the engine starts.
func NewPlanner(st store.Outbox, now func() time.Time) *Planner {
	if now == nil {
		now = time.Now
	}
	p := &Planner{st: st, now: now}
	p.autos.Store(&map[string][]store.Automation{})
	return p
}

// Reload reads the automations from the store.
func (p *Planner) Reload(ctx context.Context) error {
	list, err := p.st.ListAutomations(ctx)
	if err != nil {
		return fmt.Errorf("loading automations: %w", err)
	}
	m := map[string][]store.Automation{}
	for _, a := range list {
		if a.Enabled {
			m[a.Segment] = append(m[a.Segment], a)
		}
	}
	p.autos.Store(&m)
	return nil
}

// Planned reports whether items were planned since it was last called
// (so the caller knows to wake the dispatcher once they commit).
func (p *Planner) Planned() bool { return p.planned.Swap(false) }

// Plan appends an outbox item to res.Actions for every enabled automation
// that a transition of res triggers. Transitions with Act false (a
// backfill whose policy is not to act) trigger nothing. Each item is due
// its automation's delay after now: the delay counts from when Kiln
// recorded the transition.
func (p *Planner) Plan(ctx context.Context, res *store.Resolution) error {
	autos := *p.autos.Load()
	if len(autos) == 0 {
		return nil
	}
	now := p.now().UTC()
	n := len(res.Actions)
	for i := range res.Transitions {
		tr := &res.Transitions[i]
		if !tr.Act {
			continue
		}
		var payload json.RawMessage
		for _, a := range autos[tr.Segment] {
			if (a.On == OnEnter) != tr.Entered {
				continue
			}
			if payload == nil {
				typ := EventExited
				if tr.Entered {
					typ = EventEntered
				}
				var err error
				payload, err = json.Marshal(Payload{Type: typ, Segment: tr.Segment, ProfileID: tr.ProfileID, Entered: tr.Entered,
					At: tr.At, Version: tr.Version, Reason: tr.Reason, EventSeq: tr.EventSeq, Evidence: tr.Evidence})
				if err != nil {
					return fmt.Errorf("transition of %s in %s: %w", tr.ProfileID, tr.Segment, err)
				}
			}
			res.Actions = append(res.Actions, store.OutboxItem{
				Transition: i, ProfileID: tr.ProfileID, Destination: a.Destination, Automation: a.ID,
				Key: kiln.NewID("msg_"), Payload: payload, Due: now.Add(a.Delay), CreatedAt: now, Capped: !a.Hook,
			})
		}
	}
	if len(res.Actions) > n {
		p.planned.Store(true)
	}
	return nil
}
