package ingest

import (
	"io"
	"log"
	"sort"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	rudder "github.com/rudderlabs/analytics-go/v4"
	segment "github.com/segmentio/analytics-go/v3"
)

// byMessageID indexes events; it fails the test on an unexpected duplicate.
func byMessageID(t *testing.T, events []kiln.Event) map[string]kiln.Event {
	t.Helper()
	m := map[string]kiln.Event{}
	for _, e := range events {
		m[e.MessageID] = e
	}
	return m
}

func TestSegmentClientAllCalls(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, nil)
	client, err := segment.NewWithConfig(b.key, segment.Config{
		Endpoint:  b.srv.URL,
		BatchSize: 100,
		Interval:  time.Hour, // flush on Close only, so all calls go in one batch
	})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	calls := []segment.Message{
		segment.Identify{MessageId: "m-identify", UserId: "u1", Traits: segment.NewTraits().SetEmail(" Ann@Example.COM ").SetName("Ann").Set("phone", "+44 20 7946 0958")},
		segment.Track{MessageId: "m-track", UserId: "u1", Event: "Order Completed", Timestamp: past,
			Properties: segment.NewProperties().Set("order_id", "o-1").SetRevenue(42.5).SetCurrency("EUR").
				Set("products", []map[string]any{{"sku": "SKU-1", "price": 21.25, "quantity": 2}})},
		segment.Alias{MessageId: "m-alias", UserId: "u1", PreviousId: "anon-1"},
		segment.Group{MessageId: "m-group", UserId: "u1", GroupId: "g-9", Traits: segment.NewTraits().SetName("Acme").SetEmail("info@acme.test")},
		segment.Page{MessageId: "m-page", AnonymousId: "anon-1", Name: "Pricing", Properties: segment.NewProperties().SetURL("https://shop.test/pricing")},
		segment.Screen{MessageId: "m-screen", UserId: "u1", Name: "Basket", Properties: segment.NewProperties().Set("items", 3)},
	}
	for _, c := range calls {
		if err := client.Enqueue(c); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	end := time.Now()

	events, rejects := b.sink.snapshot()
	if len(rejects) != 0 {
		t.Fatalf("rejects: %+v", rejects)
	}
	got := byMessageID(t, events)
	if len(got) != len(calls) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(calls), events)
	}
	want := map[string]struct {
		typ    kiln.EventType
		name   string
		anchor string
	}{
		"m-identify": {kiln.Identify, "", "user_id:u1"},
		"m-track":    {kiln.Track, "Order Completed", "user_id:u1"},
		"m-alias":    {kiln.Alias, "", "user_id:u1"},
		"m-group":    {kiln.Group, "", "user_id:u1"},
		"m-page":     {kiln.Page, "Pricing", "anonymous_id:anon-1"},
		"m-screen":   {kiln.Screen, "Basket", "user_id:u1"},
	}
	for id, w := range want {
		e, ok := got[id]
		if !ok {
			t.Errorf("no event %s", id)
			continue
		}
		if e.Type != w.typ || e.Name != w.name || e.Anchor != w.anchor || e.SourceID != "src_web" {
			t.Errorf("%s: got type %q name %q anchor %q source %q, want %q %q %q src_web", id, e.Type, e.Name, e.Anchor, e.SourceID, w.typ, w.name, w.anchor)
		}
		if e.ReceivedAt.Before(start.Add(-time.Second)) || e.ReceivedAt.After(end.Add(time.Second)) {
			t.Errorf("%s: receivedAt %v outside the test's run", id, e.ReceivedAt)
		}
	}
	tr := got["m-track"]
	if tr.Properties["order_id"] != "o-1" || tr.Properties["revenue"] != 42.5 || tr.Properties["currency"] != "EUR" {
		t.Errorf("track properties: %v", tr.Properties)
	}
	prods, _ := tr.Properties["products"].([]any)
	if len(prods) != 1 || prods[0].(map[string]any)["sku"] != "SKU-1" {
		t.Errorf("products: %#v", tr.Properties["products"])
	}
	// Both clocks are the same here, so correction leaves the past
	// timestamp (almost) as it was: receivedAt - (sentAt - timestamp).
	if d := tr.Timestamp.Sub(past); d < -time.Second || d > 5*time.Second {
		t.Errorf("track timestamp %v, want about %v", tr.Timestamp, past)
	}
	if tr.Context["library"].(map[string]any)["name"] != "analytics-go" {
		t.Errorf("batch context not merged: %v", tr.Context)
	}
	id := got["m-identify"]
	if id.Traits["email"] != " Ann@Example.COM " || id.Traits["name"] != "Ann" {
		t.Errorf("identify traits: %v", id.Traits)
	}
	ids := Identifiers(&id)
	wantIDs := []kiln.Identifier{{Kind: kiln.UserID, Value: "u1"}, {Kind: kiln.Email, Value: "ann@example.com"}, {Kind: kiln.Phone, Value: "+442079460958"}}
	if len(ids) != len(wantIDs) {
		t.Fatalf("identifiers %v, want %v", ids, wantIDs)
	}
	for i := range ids {
		if ids[i] != wantIDs[i] {
			t.Errorf("identifier %d: %v, want %v", i, ids[i], wantIDs[i])
		}
	}
	if got["m-alias"].PreviousID != "anon-1" || got["m-group"].GroupID != "g-9" {
		t.Errorf("alias/group ids: %+v %+v", got["m-alias"], got["m-group"])
	}
	// A group's traits describe the group: its email is not the user's.
	g := got["m-group"]
	for _, idf := range Identifiers(&g) {
		if idf.Kind == kiln.Email {
			t.Errorf("group traits email taken as the user's: %v", idf)
		}
	}
	if got["m-page"].Properties["url"] != "https://shop.test/pricing" || got["m-screen"].Properties["items"] != float64(3) {
		t.Errorf("page/screen properties: %v %v", got["m-page"].Properties, got["m-screen"].Properties)
	}
}

// The Segment client retries any non-2xx; a failed store write must lead to
// the same messageIds arriving again, which the store then dedupes.
func TestSegmentClientRetriesKeepMessageIDs(t *testing.T) {
	t.Parallel()
	b := setupSegment(t, nil)
	b.sink.failNext = 2
	cb := &doneCallback{done: make(chan struct{}, 10)}
	client, err := segment.NewWithConfig(b.key, segment.Config{
		Endpoint:   b.srv.URL,
		BatchSize:  5, // the fifth message triggers the send
		Interval:   time.Hour,
		RetryAfter: func(int) time.Duration { return time.Millisecond },
		Callback:   cb,
		Logger:     segment.StdLogger(log.New(io.Discard, "", 0)), // the failures are on purpose
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		// No MessageId: the client makes one up once per message.
		if err := client.Enqueue(segment.Track{UserId: "u1", Event: "Product Viewed", Properties: segment.NewProperties().Set("i", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Close abandons retries, so wait for the client to report success.
	for range 5 {
		select {
		case <-cb.done:
		case <-time.After(10 * time.Second):
			t.Fatal("client did not deliver the batch")
		}
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	b.sink.mu.Lock()
	writes := b.sink.writes
	b.sink.mu.Unlock()
	if writes != 3 {
		t.Fatalf("sink saw %d writes, want 3 (two failures, then success)", writes)
	}
	events, _ := b.sink.snapshot()
	if len(events) != 5 || len(b.sink.unique()) != 5 {
		t.Fatalf("got %d events, %d unique; want 5 and 5", len(events), len(b.sink.unique()))
	}
}

func TestRudderClientGzipAllCalls(t *testing.T) {
	t.Parallel()
	// The server's clock runs an hour ahead of the client's: timestamps are
	// corrected onto the server's clock.
	skew := time.Hour
	b := setupSegment(t, func(c *SegmentConfig) { c.Now = func() time.Time { return time.Now().Add(skew) } })
	client, err := rudder.NewWithConfig(b.key, rudder.Config{
		DataPlaneUrl: b.srv.URL,
		BatchSize:    100,
		Interval:     time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Millisecond)
	calls := []rudder.Message{
		rudder.Identify{MessageId: "r-identify", UserId: "u2", Traits: rudder.NewTraits().SetEmail("bob@example.com").Set("loyalty_number", " ab 123 "), OriginalTimestamp: past},
		rudder.Track{MessageId: "r-track", AnonymousId: "anon-2", Event: "Product Added", Properties: rudder.NewProperties().Set("sku", "S-9").SetPrice(9.99), OriginalTimestamp: past},
		rudder.Alias{MessageId: "r-alias", UserId: "u2", PreviousId: "anon-2", OriginalTimestamp: past},
		rudder.Group{MessageId: "r-group", AnonymousId: "anon-2", GroupId: "g-1", OriginalTimestamp: past},
		rudder.Page{MessageId: "r-page", UserId: "u2", Name: "Home", OriginalTimestamp: past},
		rudder.Screen{MessageId: "r-screen", UserId: "u2", Name: "Cart", OriginalTimestamp: past},
	}
	for _, c := range calls {
		if err := client.Enqueue(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	events, rejects := b.sink.snapshot()
	if len(rejects) != 0 {
		t.Fatalf("rejects: %+v", rejects)
	}
	got := byMessageID(t, events)
	var names []string
	for id, e := range got {
		names = append(names, id+"="+string(e.Type)+"/"+e.Name)
		if d := e.Timestamp.Sub(past.Add(skew)); d < -time.Second || d > 5*time.Second {
			t.Errorf("%s: timestamp %v, want about %v (client time + skew)", id, e.Timestamp, past.Add(skew))
		}
	}
	sort.Strings(names)
	want := []string{"r-alias=alias/", "r-group=group/", "r-identify=identify/", "r-page=page/Home", "r-screen=screen/Cart", "r-track=track/Product Added"}
	if len(names) != len(want) {
		t.Fatalf("events %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("event %d: %s, want %s", i, names[i], want[i])
		}
	}
	idf := got["r-identify"]
	ids := Identifiers(&idf)
	if len(ids) != 3 || ids[2] != (kiln.Identifier{Kind: kiln.Loyalty, Value: "AB123"}) {
		t.Errorf("identify identifiers: %v", ids)
	}
	if got["r-track"].Anchor != "anonymous_id:anon-2" || got["r-track"].Properties["price"] != 9.99 {
		t.Errorf("track: %+v", got["r-track"])
	}
}

// doneCallback signals each message the Segment client delivered.
type doneCallback struct{ done chan struct{} }

func (c *doneCallback) Success(segment.Message)        { c.done <- struct{}{} }
func (c *doneCallback) Failure(segment.Message, error) {}
