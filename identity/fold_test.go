package identity

import (
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

func TestFold(t *testing.T) {
	t.Parallel()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	// Out of Seq order, as EventsByAnchor returns them (newest first).
	evs := []kiln.Event{
		{Seq: 9, Type: kiln.Track, Name: kiln.Unsubscribed, SourceID: "esp", Timestamp: at(30), ReceivedAt: at(31)},
		{Seq: 7, Type: kiln.Identify, Traits: map[string]any{"plan": "pro", "email_consent": true}, SourceID: "web", Timestamp: at(20), ReceivedAt: at(21)},
		{Seq: 3, Type: kiln.Identify, Traits: map[string]any{"plan": "free", "city": "York"}, Timestamp: at(40), ReceivedAt: at(41)},
	}
	pc, cs := Fold("p1", evs)
	if pc.ID != "p1" || !pc.Replace || pc.EventCount != 3 || !pc.FirstSeen.Equal(at(20)) || !pc.LastSeen.Equal(at(40)) || !pc.At.Equal(at(41)) {
		t.Errorf("profile change: %+v", pc)
	}
	// Seq 7 is later than seq 3 in the log, whatever the event times.
	if pc.Traits["plan"] != "pro" || pc.Traits["city"] != "York" {
		t.Errorf("traits: %v", pc.Traits)
	}
	// The unsubscribe (10:30) is newer than the identify's consent (10:20).
	if len(cs) != 1 || cs[0].ProfileID != "p1" || cs[0].Channel != kiln.ChannelEmail || cs[0].Granted || cs[0].Source != "esp" {
		t.Errorf("consent: %+v", cs)
	}
	if pc, cs := Fold("p2", nil); pc.EventCount != 0 || !pc.Replace || len(cs) != 0 {
		t.Errorf("no events: %+v %+v", pc, cs)
	}
}
