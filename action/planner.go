package action

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
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
	// unleased says an item due at once was written unleased (its
	// destination's queue was full): the dispatcher must claim it.
	unleased atomic.Bool
	delayed  atomic.Int64 // Unix ns of the earliest delayed item planned since taken

	// Items due at once are written leased to this process when its
	// dispatcher runs (preclaim), and handed to it from memory when they
	// commit: no claim transaction on the way to delivery. fresh holds
	// them by their resolution's first transition until then.
	lease    time.Duration
	preclaim func(dest string) int // room for items leased at planning, by destination
	mu       sync.Mutex
	fresh    map[*kiln.Transition]freshBatch
}

type freshBatch struct {
	items []store.OutboxItem // shares the Resolution's array: the store sets IDs in it
	at    time.Time
}

// NewPlanner returns a planner over the automations in st; call Reload
// before the engine starts.
func NewPlanner(st store.Outbox, now func() time.Time) *Planner {
	if now == nil {
		now = time.Now
	}
	p := &Planner{st: st, now: now, fresh: map[*kiln.Transition]freshBatch{}}
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
	pre := p.preclaim != nil && p.lease > 0
	var leased bool
	room := map[string]int{} // what is left of each destination's room in this resolution
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
			it := store.OutboxItem{
				Transition: i, ProfileID: tr.ProfileID, Destination: a.Destination, Automation: a.ID,
				Key: actionKey(a.ID, tr), Payload: payload, Due: now.Add(a.Delay), CreatedAt: now, Capped: !a.Hook,
			}
			if pre && a.Delay == 0 {
				r, ok := room[a.Destination]
				if !ok {
					r = p.preclaim(a.Destination)
				}
				if r > 0 {
					it.ClaimedUntil, leased = now.Add(p.lease), true
					r--
				} else {
					p.unleased.Store(true)
				}
				room[a.Destination] = r
			}
			if a.Delay > 0 {
				due := it.Due.UnixNano()
				for cur := p.delayed.Load(); (cur == 0 || due < cur) && !p.delayed.CompareAndSwap(cur, due); cur = p.delayed.Load() {
				}
			}
			res.Actions = append(res.Actions, it)
		}
	}
	if len(res.Actions) > n {
		p.planned.Store(true)
	}
	if leased {
		p.mu.Lock()
		for k, b := range p.fresh {
			if now.Sub(b.at) > p.lease { // its resolution never committed
				delete(p.fresh, k)
			}
		}
		p.fresh[&res.Transitions[0]] = freshBatch{items: res.Actions[n:], at: now}
		p.mu.Unlock()
	}
	return nil
}

// takeDelayed returns the earliest due time of the delayed items planned
// since it was last called (zero if none).
func (p *Planner) takeDelayed() time.Time {
	if n := p.delayed.Swap(0); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// committed returns the leased items planned with ts, once ts is durable.
func (p *Planner) committed(ts []kiln.Transition) []store.OutboxItem {
	if len(ts) == 0 {
		return nil
	}
	p.mu.Lock()
	b, ok := p.fresh[&ts[0]]
	delete(p.fresh, &ts[0])
	p.mu.Unlock()
	if !ok {
		return nil
	}
	var out []store.OutboxItem
	for _, it := range b.items {
		if !it.ClaimedUntil.IsZero() && it.ID != 0 {
			out = append(out, it)
		}
	}
	return out
}

// actionKey is an action's idempotency key (the webhook-id, the
// connector's key): derived from the automation and the transition's
// content (profile, segment, direction, instant, version), so that however
// often a change were recorded, a receiver that drops repeated ids acts on
// it once.
func actionKey(automation string, tr *kiln.Transition) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%t\x00%d\x00%d", automation, tr.ProfileID, tr.Segment, tr.Entered, tr.At.UnixMilli(), tr.Version)
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}
