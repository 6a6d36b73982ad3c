package identity_test

import (
	"fmt"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/identity"
)

// A processor's loop: resolve a batch of events in Seq order, persist
// Pending with store.ApplyResolution, then Commit (or Abort on failure).
func ExampleResolver() {
	n := 0
	r, err := identity.New(identity.Config{
		Rules:      identity.Rules{CountryCode: "+44"},
		Checkpoint: "identity",
		NewID:      func() string { n++; return fmt.Sprintf("p%d", n) },
	})
	if err != nil {
		panic(err)
	}
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	events := []kiln.Event{
		{Seq: 1, Type: kiln.Page, AnonymousID: "a-1"},
		{Seq: 2, Type: kiln.Track, Name: kiln.ProductViewed, AnonymousID: "a-2", Properties: map[string]any{"email": "Ann@Example.com"}},
		{Seq: 3, Type: kiln.Identify, UserID: "42", AnonymousID: "a-1", Traits: map[string]any{"email": "ann@example.com", "phone": "07700 900123"}},
	}
	for i := range events {
		e := &events[i]
		e.Timestamp, e.ReceivedAt = at.Add(time.Duration(i)*time.Minute), at.Add(time.Duration(i)*time.Minute)
		e.Anchor = identity.Anchor(r.Extractor().Extract(e)) // ingest does this
		out := r.Resolve(e)
		fmt.Println(e.Seq, out.Status, out.ProfileID, out.Anchor, out.Linked, len(out.Merges))
	}
	res := r.Pending()
	fmt.Println("merges:", len(res.Merges), "profiles:", len(res.Profiles), "identities:", len(res.Identities), "checkpoint:", res.Checkpoint.Seq)
	// ... store.ApplyResolution(ctx, res) succeeded:
	r.Commit()
	fmt.Println(r.Identities("p1"))
	// Output:
	// 1 resolved p1 anonymous_id:a-1 [anonymous_id:a-1] 0
	// 2 resolved p2 email:ann@example.com [email:ann@example.com anonymous_id:a-2] 0
	// 3 resolved p1 user_id:42 [user_id:42 phone:+447700900123] 1
	// merges: 0 profiles: 1 identities: 5 checkpoint: 3
	// [user_id:42 email:ann@example.com phone:+447700900123 anonymous_id:a-1 anonymous_id:a-2]
}
