package action_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

// recording is a vendor connector that keeps the changes it is given and
// refuses members without an email, as a real connector would.
type recording struct {
	mu      sync.Mutex
	changes []connector.Change
	secrets connector.Secrets
}

var rec = &recording{}

func init() {
	connector.Register("kilntest", func(cfg json.RawMessage, secrets connector.Secrets, _ *http.Client) (connector.Connector, error) {
		var c struct {
			List string `json:"list"`
		}
		if err := connector.Decode("kilntest", cfg, &c); err != nil {
			return nil, err
		}
		if _, err := secrets.Require("kilntest", "api_key"); err != nil {
			return nil, err
		}
		rec.mu.Lock()
		rec.secrets = secrets
		rec.mu.Unlock()
		return rec, nil
	}, connector.Doc{Name: "Kiln test", Secrets: []string{"api_key"}, Ops: []connector.Op{connector.OpAdd, connector.OpRemove, connector.OpUpsert}, Rate: connector.Rate{PerSecond: 100, Burst: 10}})
}

func (r *recording) Deliver(ctx context.Context, cs []connector.Change) []connector.Result {
	out := make([]connector.Result, len(cs))
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range cs {
		if c.Member.Email == "" {
			out[i].Err = connector.Invalid("kilntest", "member %s has no email", c.Member.ProfileID)
			continue
		}
		r.changes = append(r.changes, c)
	}
	return out
}

func (r *recording) MaxBatch() int             { return 100 }
func (r *recording) RateLimit() connector.Rate { return connector.Rate{PerSecond: 100, Burst: 10} }

func TestConnectorDestination(t *testing.T) {
	rec.mu.Lock()
	rec.changes, rec.secrets = nil, nil
	rec.mu.Unlock()
	r := newRig(t, nil)
	if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "vendor", Kind: "kilntest", Config: json.RawMessage(`{"list":"L1"}`)}); kiln.ErrorCode(err) != kiln.EInvalid {
		t.Fatalf("missing api_key: %v", err)
	}
	d, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "vendor", Kind: "kilntest", Config: json.RawMessage(`{"list":"L1"}`), Secrets: connector.Secrets{"api_key": "sk-123"}})
	if err != nil {
		t.Fatal(err)
	}
	r.automation(action.AutomationSpec{Name: "sync-in", Segment: "vip", Destination: d.Name})
	r.automation(action.AutomationSpec{Name: "sync-out", Segment: "vip", On: action.OnExit, Destination: d.Name})
	r.transition(enter("p_1", "vip"))
	// (Sent apart: in one batch the exit would supersede the entry.)
	waitFor(t, "the entry", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.changes) == 1 })
	r.transition(exit("p_1", "vip"))
	waitFor(t, "both changes", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.changes) == 2 })
	waitFor(t, "the outcomes recorded", r.settled)
	rec.mu.Lock()
	cs, secrets := rec.changes, rec.secrets
	rec.mu.Unlock()
	items := r.items(store.OutboxDelivered)
	if len(items) != 2 || cs[0].Op != connector.OpAdd || cs[1].Op != connector.OpRemove || cs[0].Segment != "vip" ||
		cs[0].Member.Email != "p_1@example.com" || cs[0].IdempotencyKey != items[0].Key || secrets["api_key"] != "sk-123" {
		t.Fatalf("changes %+v, items %+v, secrets %v", cs, items, secrets)
	}
}
