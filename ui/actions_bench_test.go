package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// BenchmarkActionPages times the pages that read the outbox with 100,000
// items in it (a tenth of them dead letters), straight through the
// handler: the newest items are found by bisecting on IDs, so the time
// should not grow with the outbox.
//
//	go test ./ui -run '^$' -bench ActionPages -benchtime 20x
func BenchmarkActionPages(b *testing.B) {
	const n = 100000
	h := newHarness(b, "")
	ctx := context.Background()
	now := time.Now().UTC()
	if err := h.DB.ApplyResolution(ctx, store.Resolution{Profiles: []store.ProfileChange{{ID: "p1", EventCount: 1, At: now}}}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 5000 {
		var res store.Resolution
		for j := range 5000 {
			res.Transitions = append(res.Transitions, kiln.Transition{Segment: "s", ProfileID: "p1", Entered: j%2 == 0, At: now, Version: 1, Reason: kiln.ReasonEvent})
			// Dead from the start, or already delivered: the dispatcher
			// has nothing to do, and the pages have both kinds to count.
			state := store.OutboxDelivered
			if (i+j)%10 == 0 {
				state = store.OutboxDead
			}
			res.Actions = append(res.Actions, store.OutboxItem{Transition: j, ProfileID: "p1", Destination: "d", Automation: "a",
				Key: fmt.Sprint("k", i+j), State: state, Due: now, NextAt: now, CreatedAt: now, FinishedAt: now})
		}
		if err := h.DB.ApplyResolution(ctx, res); err != nil {
			b.Fatal(err)
		}
	}
	handler := h.UI.Handler()
	c := h.signIn(b)
	u, _ := http.NewRequest("GET", h.URL+"/ui/", nil)
	cookies := c.Jar.Cookies(u.URL)
	for _, p := range []string{"/ui/", "/ui/destinations", "/ui/automations", "/ui/deliveries"} {
		b.Run(p, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", p, nil)
				for _, ck := range cookies {
					req.AddCookie(ck)
				}
				w := httptest.NewRecorder()
				handler.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s: %d", p, w.Code)
				}
			}
		})
	}
}
