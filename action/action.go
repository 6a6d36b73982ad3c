// Package action is how Kiln acts on segments: automations turn segment
// transitions into outbox items (the Planner, called by the engine inside
// the transaction that records the transitions), and the Dispatcher
// delivers them at least once, in order per (profile, destination), with
// retries, dead letters and the consent, suppression, frequency-cap,
// quiet-hours and recheck rules checked at send time.
//
// Latency: items due at once are written already leased to the running
// dispatcher and handed to it in memory when their transaction commits,
// so the way from transition to delivery has no claim transaction; the
// dispatcher checks only that nothing is ahead of the item in its lane.
// Other items (delays, retries, replays, a crash's leftovers) are claimed
// from the store, polled as a fallback.
//
// Membership syncs to vendor connectors are reconciled, not replayed: an
// item sends only the difference between the profile's current membership
// and what the vendor acknowledged (sync.go), and a full reconciliation
// compares whole segments with the vendor (reconcile.go).
//
// Destinations are webhooks signed as Standard Webhooks define
// (docs/WEBHOOKS.md), SMTP servers, or vendor connectors (package
// connector). REST Hooks subscriptions are automations with a webhook
// destination of their own. Service is the management surface the API and
// CLI use.
package action

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
)

// Destination kinds besides the connector ids.
const (
	KindWebhook = "webhook"
	KindSMTP    = "smtp"
)

// Automation triggers.
const (
	OnEnter = "enter"
	OnExit  = "exit"
)

// Event types, as in the webhook payload and REST Hooks subscriptions.
const (
	EventEntered = "segment.entered"
	EventExited  = "segment.exited"
)

// Options are an automation's action settings.
type Options struct {
	// Traits names the profile traits sent with the action; ["*"] sends
	// all of them.
	Traits []string `json:"traits,omitempty"`
	// Channel is the channel the action reaches the customer on: nothing
	// is sent unless the profile's latest consent on it is granted. Email
	// actions always use the email channel.
	Channel kiln.Channel `json:"channel,omitempty"`
	// Quiet is a daily window, "21:00-08:00", in the store's time zone,
	// during which sending waits until the window ends.
	Quiet string `json:"quiet,omitempty"`
	// Subject and Body (the text part) are the email's, as Go
	// text/template, and HTML its HTML part, as html/template (values are
	// escaped for HTML), all over {Segment, ProfileID, Entered, Email,
	// Traits, UnsubscribeURL}. With HTML the email is multipart/alternative.
	Subject string `json:"subject,omitempty"`
	Body    string `json:"body,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Op overrides the connector operation (default add on entry, remove
	// on exit); "upsert" writes the traits instead.
	Op connector.Op `json:"op,omitempty"`
}

// ParseOptions decodes options strictly, so a typo is an error.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if len(raw) == 0 {
		return o, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, kiln.Errorf(kiln.EInvalid, "automation options: %v", err)
	}
	if o.Quiet != "" {
		if _, err := parseQuiet(o.Quiet); err != nil {
			return o, err
		}
	}
	switch o.Op {
	case "", connector.OpAdd, connector.OpRemove, connector.OpUpsert:
	default:
		return o, kiln.Errorf(kiln.EInvalid, "automation options: op %q: want add, remove or upsert", o.Op)
	}
	return o, nil
}

// Payload is what an outbox item keeps of its transition: enough to build
// the message at delivery without reading the transition back.
type Payload struct {
	Type      string          `json:"type"`
	Segment   string          `json:"segment"`
	ProfileID string          `json:"profileId"`
	Entered   bool            `json:"entered"`
	At        time.Time       `json:"at"`
	Version   int64           `json:"version"`
	Reason    string          `json:"reason"`
	EventSeq  int64           `json:"eventSeq,omitempty"`
	Evidence  json.RawMessage `json:"evidence,omitempty"`
	// Force, on a reconciliation's item, sends the desired state whatever
	// the destination acknowledged (a re-assertion).
	Force bool `json:"force,omitempty"`
}

// Message is the JSON body of a webhook (docs/WEBHOOKS.md), in the shape
// Standard Webhooks recommends: type, timestamp, data.
type Message struct {
	Type      string      `json:"type"` // segment.entered or segment.exited
	Timestamp time.Time   `json:"timestamp"`
	Data      MessageData `json:"data"`
}

// MessageData is the webhook's data.
type MessageData struct {
	Segment      string          `json:"segment"`
	ProfileID    string          `json:"profileId"`
	TransitionID int64           `json:"transitionId"`
	Entered      bool            `json:"entered"`
	At           time.Time       `json:"at"`
	Version      int64           `json:"version"` // segment definition version
	Reason       string          `json:"reason"`
	EventSeq     int64           `json:"eventSeq,omitempty"`
	Evidence     json.RawMessage `json:"evidence,omitempty"`
	Traits       map[string]any  `json:"traits,omitempty"`
	Automation   string          `json:"automation"`
}

// quiet is a daily window in minutes since midnight.
type quiet struct{ from, to int }

func parseQuiet(s string) (quiet, error) {
	a, b, ok := strings.Cut(s, "-")
	from, err1 := clockMinutes(a)
	to, err2 := clockMinutes(b)
	if !ok || err1 != nil || err2 != nil || from == to {
		return quiet{}, kiln.Errorf(kiln.EInvalid, "quiet hours %q: want HH:MM-HH:MM, e.g. 21:00-08:00, with different ends", s)
	}
	return quiet{from, to}, nil
}

func clockMinutes(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return hh*60 + mm, nil
}

// until returns when the window that contains t ends, or the zero time if
// t is outside it. The window is read in t's location.
func (q quiet) until(t time.Time) time.Time {
	m := t.Hour()*60 + t.Minute()
	in := q.from < q.to && m >= q.from && m < q.to || q.from > q.to && (m >= q.from || m < q.to)
	if !in {
		return time.Time{}
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	end := day.Add(time.Duration(q.to) * time.Minute)
	if !end.After(t) {
		end = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, t.Location()).Add(time.Duration(q.to) * time.Minute)
	}
	return end
}
