package action_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

// memVendor is a vendor in memory: members by segment (by email), and
// the calls made to it. memlist can list its members; memnolist cannot.
type memVendor struct {
	mu      sync.Mutex
	members map[string]map[string]bool
	calls   int
	changes []connector.Change
	failing bool // every change fails, retryably
	lossy   bool // every change is applied, then fails retryably (the answer is lost)
}

var (
	vendorsMu sync.Mutex
	vendors   = map[string]*memVendor{}
)

type memConn struct{ v *memVendor }
type memLister struct{ memConn }

func init() {
	factory := func(list bool) connector.Factory {
		return func(cfg json.RawMessage, _ connector.Secrets, _ *http.Client) (connector.Connector, error) {
			var c struct {
				Vendor string `json:"vendor"`
			}
			if err := connector.Decode("mem", cfg, &c); err != nil {
				return nil, err
			}
			vendorsMu.Lock()
			v := vendors[c.Vendor]
			vendorsMu.Unlock()
			if v == nil {
				return nil, fmt.Errorf("no vendor %q", c.Vendor)
			}
			if list {
				return memLister{memConn{v}}, nil
			}
			return memConn{v}, nil
		}
	}
	doc := connector.Doc{Name: "In memory", Ops: []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert}, Rate: connector.Rate{PerSecond: 1000, Burst: 100}}
	connector.Register("memlist", factory(true), doc)
	connector.Register("memnolist", factory(false), doc)
}

func newMemVendor(t *testing.T) (string, *memVendor) {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	v := &memVendor{members: map[string]map[string]bool{}}
	vendorsMu.Lock()
	vendors[name] = v
	vendorsMu.Unlock()
	return name, v
}

func (c memConn) Deliver(_ context.Context, cs []connector.Change) (out []connector.Result) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	c.v.calls++
	if c.v.failing {
		out := make([]connector.Result, len(cs))
		for i := range out {
			out[i].Err = &connector.Error{Vendor: "mem", Code: kiln.EUnavailable, Retryable: true, Message: "down"}
		}
		return out
	}
	defer func() {
		if c.v.lossy {
			for i := range out {
				out[i].Err = &connector.Error{Vendor: "mem", Code: kiln.EUnavailable, Retryable: true, Message: "connection closed"}
			}
		}
	}()
	for _, ch := range cs {
		c.v.changes = append(c.v.changes, ch)
		if c.v.members[ch.Segment] == nil {
			c.v.members[ch.Segment] = map[string]bool{}
		}
		switch ch.Op {
		case connector.OpAdd:
			c.v.members[ch.Segment][ch.Member.Email] = true
		case connector.OpRemove:
			delete(c.v.members[ch.Segment], ch.Member.Email)
		}
	}
	out = make([]connector.Result, len(cs))
	return out
}

func (c memConn) MaxBatch() int             { return 1000 }
func (c memConn) RateLimit() connector.Rate { return connector.Rate{PerSecond: 1000, Burst: 100} }

func (c memLister) ListMembers(_ context.Context, seg string, fn func([]connector.Member) error) error {
	c.v.mu.Lock()
	var ms []connector.Member
	for e := range c.v.members[seg] {
		ms = append(ms, connector.Member{Email: e})
	}
	c.v.mu.Unlock()
	return fn(ms)
}

func (v *memVendor) state(seg string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for e := range v.members[seg] {
		out = append(out, strings.TrimSuffix(e, "@example.com"))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func (v *memVendor) set(seg string, emails ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.members[seg] = map[string]bool{}
	for _, e := range emails {
		v.members[seg][e+"@example.com"] = true
	}
}

func (v *memVendor) callCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls
}

// memSync makes a destination of kind on a fresh vendor with automations
// syncing vip both ways.
func (r *rig) memSync(kind string) (*store.Destination, *memVendor) {
	r.t.Helper()
	name, v := newMemVendor(r.t)
	d, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "mem", Kind: kind, Config: json.RawMessage(`{"vendor":"` + name + `"}`)})
	if err != nil {
		r.t.Fatal(err)
	}
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: d.Name})
	r.automation(action.AutomationSpec{Name: "out", Segment: "vip", On: action.OnExit, Destination: d.Name})
	return d, v
}

func countNotes(items []store.OutboxItem, prefix string) int {
	n := 0
	for _, it := range items {
		if strings.HasPrefix(it.LastError, prefix) {
			n++
		}
	}
	return n
}

// Once the vendor acknowledged a state, changes that return to it before
// they are sent cost no call, across a restart too; the acknowledged
// state is recorded only on success.
func TestSyncSendsOnlyTheDifference(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		d, v := r.memSync("memnolist")
		r.transition(enter("p_1", "vip"), enter("p_2", "vip"))
		waitFor(t, "the entries", func() bool { return v.state("vip") == "p_1,p_2" })
		waitFor(t, "settled", r.settled)
		calls := v.callCount()
		acks, err := r.st.SyncAcks(ctx, d.ID, "vip", []string{"p_1", "p_2", "p_3"})
		if err != nil || len(acks) != 2 || !acks["p_1"].In || !acks["p_2"].In {
			t.Fatalf("acks %+v, %v", acks, err)
		}
		// p_1 leaves and comes back, p_2 leaves, comes back and leaves,
		// all before anything is sent: p_1 costs nothing, p_2 one remove.
		r.restart() // the acknowledged states are durable
		r.offline(func() {
			r.transition(exit("p_1", "vip"), exit("p_2", "vip"))
			r.transition(enter("p_1", "vip"), enter("p_2", "vip"))
			r.transition(exit("p_2", "vip"))
		})
		waitFor(t, "settled", r.settled)
		if got := v.state("vip"); got != "p_1" {
			t.Fatalf("vendor has %q, want p_1", got)
		}
		if n := v.callCount() - calls; n != 1 {
			t.Fatalf("%d calls for the flapping, want 1 (p_2's remove)", n)
		}
		v.mu.Lock()
		last := v.changes[len(v.changes)-1]
		n := len(v.changes)
		v.mu.Unlock()
		if last.Op != connector.OpRemove || last.Member.ProfileID != "p_2" || n != 3 {
			t.Fatalf("changes sent: %d, the last %+v; want p_1's and p_2's adds, then p_2's remove", n, last)
		}
		// p_1's exit and entry, p_2's entry: in sync; p_2's first exit:
		// superseded by its last.
		done := r.items(store.OutboxDelivered)
		if got, sup := countNotes(done, "in sync: "), countNotes(done, "superseded "); got != 3 || sup != 1 {
			t.Fatalf("%d items in sync and %d superseded, want 3 and 1", got, sup)
		}
		acks, _ = r.st.SyncAcks(ctx, d.ID, "vip", []string{"p_1", "p_2"})
		if !acks["p_1"].In || acks["p_2"].In {
			t.Fatalf("acks after flapping %+v", acks)
		}
	})
}

// A change the vendor refuses records no acknowledged state; its retry,
// accepted, does.
func TestSyncAckOnlyOnSuccess(t *testing.T) {
	r := newRig(t, nil)
	d, v := r.memSync("memnolist")
	v.mu.Lock()
	v.failing = true
	v.mu.Unlock()
	r.transition(enter("p_1", "vip"))
	waitFor(t, "a failed attempt", func() bool { its := r.items(store.OutboxPending); return len(its) == 1 && its[0].Attempts > 0 })
	if acks, _ := r.st.SyncAcks(ctx, d.ID, "vip", []string{"p_1"}); len(acks) != 0 {
		t.Fatalf("a failed change was acknowledged: %+v", acks)
	}
	v.mu.Lock()
	v.failing = false
	v.mu.Unlock()
	waitFor(t, "settled", r.settled)
	if acks, _ := r.st.SyncAcks(ctx, d.ID, "vip", []string{"p_1"}); !acks["p_1"].In {
		t.Fatalf("acks after the retry %+v", acks)
	}
}

// A call that fails after the vendor applied it leaves the state unknown,
// not the one acknowledged before: when the profile moves back before the
// retry, the next item sends, and the vendor ends right.
func TestSyncAmbiguousFailure(t *testing.T) {
	r := newRig(t, nil)
	d, v := r.memSync("memnolist")
	r.transition(enter("p_1", "vip"))
	waitFor(t, "the entry", func() bool { return v.state("vip") == "p_1" })
	r.transition(exit("p_1", "vip"))
	waitFor(t, "settled", r.settled)
	if acks, _ := r.st.SyncAcks(ctx, d.ID, "vip", []string{"p_1"}); acks["p_1"].In || len(acks) != 1 {
		t.Fatalf("acks %+v", acks)
	}
	v.mu.Lock()
	v.lossy = true
	v.mu.Unlock()
	r.transition(enter("p_1", "vip"))
	waitFor(t, "a lost answer", func() bool { its := r.items(store.OutboxPending); return len(its) == 1 && its[0].Attempts > 0 })
	if v.state("vip") != "p_1" {
		t.Fatal("the vendor did not apply the entry")
	}
	if acks, _ := r.st.SyncAcks(ctx, d.ID, "vip", []string{"p_1"}); len(acks) != 0 {
		t.Fatalf("the state a lost call changed is still acknowledged: %+v", acks)
	}
	r.offline(func() {
		r.transition(exit("p_1", "vip"))
		v.mu.Lock()
		v.lossy = false
		v.mu.Unlock()
	})
	waitFor(t, "settled", r.settled)
	if got := v.state("vip"); got != "" {
		t.Fatalf("vendor has %q, want nobody", got)
	}
	if acks, _ := r.st.SyncAcks(ctx, d.ID, "vip", []string{"p_1"}); acks["p_1"].In || len(acks) != 1 {
		t.Fatalf("acks at the end %+v", acks)
	}
}

// A reconciliation of a connector that lists its vendor's membership
// fixes both directions (a member the vendor lost, a non-member it has),
// corrects the acknowledged states, and leaves vendor members unknown to
// Kiln alone; run again, it finds nothing to do.
func TestReconcileListed(t *testing.T) {
	onBackends(t, nil, func(t *testing.T, r *rig) {
		d, v := r.memSync("memlist")
		r.transition(enter("p_1", "vip"), enter("p_2", "vip"), enter("p_3", "vip"))
		r.transition(exit("p_3", "vip"))
		waitFor(t, "settled", r.settled)
		if got := v.state("vip"); got != "p_1,p_2" {
			t.Fatalf("vendor has %q", got)
		}
		// Drift at the vendor: p_1 removed by hand, p_3 (not a member) and
		// a stranger added.
		v.set("vip", "p_2", "p_3", "stranger")
		r.profile("p_4", "p_4@example.com", nil, nil) // never synced, never a member
		rep, err := r.svc.Reconcile(ctx, "mem")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Added != 1 || rep.Removed != 1 || rep.Unknown != 1 || rep.Unchanged != 1 || rep.Corrected != 2 ||
			len(rep.Segments) != 1 || rep.Segments[0].Mode != action.ReconcileListed || rep.Segments[0].Members != 2 || rep.Segments[0].Listed != 3 {
			t.Fatalf("report %+v", rep)
		}
		waitFor(t, "settled", r.settled)
		if got := v.state("vip"); got != "p_1,p_2,stranger" {
			t.Fatalf("vendor has %q after reconciling, want p_1,p_2,stranger", got)
		}
		acks, _ := r.st.SyncAcks(ctx, d.ID, "vip", []string{"p_1", "p_2", "p_3"})
		if !acks["p_1"].In || !acks["p_2"].In || acks["p_3"].In {
			t.Fatalf("acks %+v", acks)
		}
		calls := v.callCount()
		rep, err = r.svc.Reconcile(ctx, d.ID)
		if err != nil || rep.Added+rep.Removed+rep.Corrected != 0 || rep.Unchanged != 3 {
			t.Fatalf("second report %+v, %v", rep, err)
		}
		waitFor(t, "settled", r.settled)
		if v.callCount() != calls {
			t.Fatal("a reconciliation with nothing to fix made calls")
		}
	})
}

// Without a listing, a reconciliation re-asserts Kiln's state: every
// member is added and every profile ever acknowledged that is not a
// member removed, whatever was acknowledged.
func TestReconcileReasserted(t *testing.T) {
	r := newRig(t, nil)
	_, v := r.memSync("memnolist")
	r.transition(enter("p_1", "vip"), enter("p_2", "vip"), enter("p_3", "vip"))
	r.transition(exit("p_3", "vip"))
	waitFor(t, "settled", r.settled)
	v.set("vip", "p_3", "stranger") // drift Kiln cannot see
	rep, err := r.svc.Reconcile(ctx, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Added != 2 || rep.Removed != 1 || rep.Segments[0].Mode != action.ReconcileReasserted {
		t.Fatalf("report %+v", rep)
	}
	waitFor(t, "settled", r.settled)
	if got := v.state("vip"); got != "p_1,p_2,stranger" {
		t.Fatalf("vendor has %q, want p_1,p_2,stranger", got)
	}
	if _, err := r.svc.Reconcile(ctx, "nope"); kiln.ErrorCode(err) != kiln.ENotFound {
		t.Fatalf("unknown destination: %v", err)
	}
	r.webhook("hook", "http://127.0.0.1:1/", 0)
	if _, err := r.svc.Reconcile(ctx, "hook"); kiln.ErrorCode(err) != kiln.EInvalid {
		t.Fatalf("a webhook: %v", err)
	}
}
