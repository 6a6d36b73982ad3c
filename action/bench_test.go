package action_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/store"
)

// BenchmarkDispatch measures delivery throughput: b.N webhooks planned for
// b.N profiles at once, delivered to a local receiver.
func BenchmarkDispatch(b *testing.B) {
	t := &testing.T{}
	r := newRig(t, nil)
	defer r.close()
	rc := newReceiver(t, nil)
	r.webhook("crm", rc.URL, 0)
	r.automation(action.AutomationSpec{Name: "in", Segment: "vip", Destination: "crm"})
	r.stop()
	r.stop = nil
	res := store.Resolution{}
	for i := range b.N {
		pid := fmt.Sprintf("p_%08d", i)
		res.Profiles = append(res.Profiles, store.ProfileChange{ID: pid, EventCount: 1, At: time.Now().UTC()})
		res.Identities = append(res.Identities, kiln.Identity{Identifier: kiln.Identifier{Kind: kiln.Email, Value: pid + "@example.com"}, ProfileID: pid})
		res.Transitions = append(res.Transitions, kiln.Transition{Segment: "vip", ProfileID: pid, Entered: true, Act: true, At: time.Now().UTC(), Version: 1, Reason: kiln.ReasonEvent})
	}
	if err := r.svc.Planner.Plan(ctx, &res); err != nil {
		b.Fatal(err)
	}
	if err := r.st.ApplyResolution(ctx, res); err != nil {
		b.Fatal(err)
	}
	r.st.Close()
	b.ResetTimer()
	r.open()
	for rc.count() < b.N {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "webhooks/s")
}
