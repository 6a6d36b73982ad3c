//go:build integration

package all_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
)

// TestLive runs add, remove and upsert against real vendor accounts, for
// each connector with KILN_LIVE_<ID> naming a JSON file:
//
//	{"config": {...}, "secrets": {...}, "segment": "vip",
//	 "member": {"email": "kiln-live-test@example.com", "traits": {"plan": "test"}}}
//
// Run with: go test -tags integration -run TestLive ./connector/all
// It writes to the account: use a sandbox and a test member.
func TestLive(t *testing.T) {
	ran := 0
	for _, id := range connector.IDs() {
		path := os.Getenv("KILN_LIVE_" + strings.ToUpper(id))
		if path == "" {
			continue
		}
		ran++
		t.Run(id, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var live struct {
				Config  json.RawMessage
				Secrets connector.Secrets
				Segment string
				Member  connector.Member
			}
			if err := json.Unmarshal(raw, &live); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			c, err := connector.New(id, live.Config, live.Secrets, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, doc, _ := connector.Lookup(id)
			now := time.Now()
			steps := []connector.Change{
				{Op: connector.OpAdd, Member: live.Member, Segment: live.Segment, Version: 1, At: now, IdempotencyKey: "live-add-" + now.Format(time.RFC3339Nano)},
				{Op: connector.OpAdd, Member: live.Member, Segment: live.Segment, Version: 1, At: now, IdempotencyKey: "live-add2-" + now.Format(time.RFC3339Nano)},
				{Op: connector.OpRemove, Member: live.Member, Segment: live.Segment, Version: 1, At: now, IdempotencyKey: "live-rm-" + now.Format(time.RFC3339Nano)},
			}
			if doc.Supports(connector.OpUpsert) && len(live.Member.Traits) > 0 {
				steps = append(steps, connector.Change{Op: connector.OpUpsert, Member: live.Member, At: now})
			}
			for _, ch := range steps {
				if err := c.Deliver(t.Context(), []connector.Change{ch})[0].Err; err != nil {
					t.Errorf("%s: %v", ch.Op, err)
				}
			}
		})
	}
	if ran == 0 {
		t.Skip("no KILN_LIVE_<ID> set: nothing to run against real vendors")
	}
}
