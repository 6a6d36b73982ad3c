package sqlite

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// ScanLog reads the text columns joined by NUL bytes; text that holds NUL
// bytes itself must still come back exactly, as ReadEvents returns it.
func TestScanLogTextWithNUL(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	evs := []kiln.Event{
		{MessageID: "plain", SourceID: "web", Type: kiln.Identify, Anchor: "user_id:1", Timestamp: at, ReceivedAt: at,
			Traits: map[string]any{"email": "a@b.c"}},
		{MessageID: "nul\x00in\x00id", SourceID: "web", Type: kiln.Track, Name: "A\x00B", UserID: "\x00",
			AnonymousID: "x", Anchor: "user_id:\x00", Store: "s\x00", Timestamp: at, ReceivedAt: at,
			Properties: map[string]any{"k": "v\x00"}},
		{MessageID: "empty", SourceID: "web", Type: "custom-type", Timestamp: at}, // no payload, no received time
		{MessageID: "", SourceID: "", Type: kiln.Page},
	}
	if _, err := db.Append(ctx, store.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	want, err := db.ReadEvents(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []kiln.Event
	if err := db.ScanLog(ctx, 0, 10, func(evs []kiln.Event) error {
		got = append(got, evs...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(evs) || !reflect.DeepEqual(got, want) {
		t.Fatalf("ScanLog read\n%#v\nReadEvents read\n%#v", got, want)
	}
	if got[1].MessageID != evs[1].MessageID || got[1].Name != "A\x00B" || got[1].Store != "s\x00" {
		t.Errorf("event with NULs read back as %#v", got[1])
	}
}
