package action

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

// Membership sync is reconciliation, not replay (issue 12).
//
// For a connector destination, an outbox item of an automation that syncs
// membership (add on entry, remove on exit: the default op) or attributes
// (upsert) does not say what to send: it says that the (destination,
// segment, profile) it names may be out of sync. At send time the
// dispatcher compares the desired state, the profile's current membership
// (and the traits the automation syncs), with what the destination
// acknowledged (store.Sync), and sends only a difference:
//
//   - An entry's item sends an add when the profile is in the segment now
//     and the destination has not acknowledged it in with these traits;
//     an exit's item sends a remove when the profile is out now and the
//     destination has not acknowledged it out. A profile that moved the
//     other way since has a later item in its lane (written with the
//     transition), which decides for it, so an item whose direction no
//     longer holds sends nothing.
//   - An upsert sends when the destination has not acknowledged these
//     traits.
//   - Nothing acknowledged means unknown, not out: the item sends.
//
// An item that sends nothing is recorded as delivered, not attempted,
// with the note "in sync" (outcome in_sync in the metrics). Before a call
// the acknowledged states it changes are made unknown (forgetAcks); the
// vendor's acceptance records the new ones in the same transaction as the
// outcome. A failure, or a death mid-call, leaves them unknown: the vendor
// may have applied the change, so the next item of the lane sends. So flapping
// (in, out, in before anything was sent), reordering, retries and
// restarts converge on the last state, and a change that returns to the
// acknowledged state before it is sent costs no call.
//
// Items of an automation whose op is overridden (add on exit, say) are
// actions, not syncs: they are sent as they are. Webhooks, emails and
// REST Hooks are events by nature and stay at least once, one message
// with a stable id per transition.

// inSync is the start of the note of an item that needed no call.
const inSync = "in sync: "

// syncs reports whether an automation's items to a connector destination
// are membership or attribute syncs (reconciled), and which.
func syncs(ds *destState, auto store.Automation, opts Options) (membership, attrs bool) {
	return syncsKind(ds.d.Kind, auto, opts)
}

// syncsKind is syncs for a destination of kind.
func syncsKind(kind string, auto store.Automation, opts Options) (membership, attrs bool) {
	if !isConnector(kind) {
		return false, false
	}
	switch opts.Op {
	case "":
		return true, false
	case connector.OpAdd:
		return auto.On == OnEnter, false
	case connector.OpRemove:
		return auto.On == OnExit, false
	case connector.OpUpsert:
		return false, true
	}
	return false, false
}

// traitsHash is a stable hash of the traits sent with a change ("" for none).
func traitsHash(traits map[string]any) string {
	if len(traits) == 0 {
		return ""
	}
	b, err := json.Marshal(traits) // map keys sorted
	if err != nil {
		return "unhashable"
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

// syncCheck compares a sync item's desired state with the acknowledged
// one. It returns the state to acknowledge when the vendor accepts the
// change, or a note (starting with inSync) when nothing is to be sent.
func (d *Dispatcher) syncCheck(ctx context.Context, ds *destState, dl *delivery) (*store.SyncAck, string, error) {
	membership, attrs := syncs(ds, dl.auto, dl.opts)
	if !membership && !attrs {
		return nil, "", nil
	}
	it := dl.item
	ack := &store.SyncAck{Destination: it.Destination, ProfileID: it.ProfileID, In: true, TraitsHash: traitsHash(dl.traits)}
	if membership {
		ack.Segment = dl.payload.Segment
		ms, err := d.st.MembershipsOf(ctx, it.ProfileID)
		if err != nil {
			return nil, "", err
		}
		in := slices.ContainsFunc(ms, func(m kiln.Membership) bool { return m.Segment == ack.Segment })
		if in != dl.payload.Entered {
			if in {
				return nil, inSync + "the profile is back in " + ack.Segment + " (a later item of its lane decides)", nil
			}
			return nil, inSync + "the profile has left " + ack.Segment + " (a later item of its lane decides)", nil
		}
		ack.In = in
		if !in {
			ack.TraitsHash = ""
		}
	}
	got, err := d.st.SyncAcks(ctx, it.Destination, ack.Segment, []string{it.ProfileID})
	if err != nil {
		return nil, "", err
	}
	prev, ok := got[it.ProfileID]
	dl.hadAck = ok
	if dl.payload.Force {
		return ack, "", nil
	}
	if ok && prev.In == ack.In && (!ack.In || prev.TraitsHash == ack.TraitsHash) {
		what := "in " + ack.Segment
		switch {
		case attrs:
			what = "these traits"
		case !ack.In:
			what = "out of " + ack.Segment
		}
		return nil, inSync + "the destination has acknowledged " + what + " already", nil
	}
	return ack, "", nil
}

// forgetAcks makes the acknowledged states the deliveries change unknown
// before they are sent: if the process dies, or the call fails, after the
// vendor applied a change, no acknowledged state claims what the vendor
// may no longer have, and the next item of the lane sends. The vendor's
// success records the new state.
func (d *Dispatcher) forgetAcks(ctx context.Context, dls []*delivery) error {
	var keys []store.SyncAck
	now := d.cfg.Now().UTC()
	for _, dl := range dls {
		if dl.ack != nil && dl.hadAck {
			keys = append(keys, store.SyncAck{Destination: dl.ack.Destination, Segment: dl.ack.Segment, ProfileID: dl.ack.ProfileID, At: now})
		}
	}
	return d.st.ForgetSyncAcks(ctx, keys)
}

// isInSync reports whether a delivered item needed no call.
func isInSync(r store.OutboxResult) bool {
	return r.State == store.OutboxDelivered && !r.Attempted && strings.HasPrefix(r.Error, inSync)
}

// stamp returns the ack to record for a change the vendor accepted at at.
func stamp(ack *store.SyncAck, at time.Time) *store.SyncAck {
	if ack == nil {
		return nil
	}
	a := *ack
	a.At = at.UTC()
	return &a
}
