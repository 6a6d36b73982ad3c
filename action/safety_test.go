package action_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	_ "github.com/kiln-cdp/kiln/connector/klaviyo"
	"github.com/kiln-cdp/kiln/store"
)

// TestPrivateDestinationsBlocked: with the guard on (the default), a
// webhook to loopback, by address or by a name that resolves there, and a
// connector whose base_url is on loopback are dead letters at once and the
// receivers see nothing.
func TestPrivateDestinationsBlocked(t *testing.T) {
	r := newRig(t, nil) // the destinations are saved while allowed...
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	r.webhook("by-ip", srv.URL, 0)
	r.webhook("by-name", "http://localhost"+port+"/hook", 0)
	cfg, _ := json.Marshal(map[string]any{"base_url": srv.URL, "lists": map[string]string{"vip": "L1"}})
	if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "klaviyo", Kind: "klaviyo", Config: cfg, Secrets: connector.Secrets{"api_key": "pk_abcdef123456"}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"by-ip", "by-name", "klaviyo"} {
		r.automation(action.AutomationSpec{Name: d, Segment: "vip", Destination: d})
	}
	// ...then the guard is on, as after an operator turned it on or a
	// name came to resolve to an internal address.
	r.cfg.AllowPrivate = false
	r.restart()
	// A literal internal address is refused when saved, with the reason.
	for _, u := range []string{srv.URL, "http://169.254.169.254/latest/meta-data/", "http://[::1]:8080/"} {
		cfg, _ := json.Marshal(action.WebhookConfig{URL: u})
		_, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "x", Kind: action.KindWebhook, Config: cfg})
		if err == nil || !strings.Contains(err.Error(), "refusing to connect") {
			t.Errorf("saving a webhook to %s: %v", u, err)
		}
	}
	smtpCfg, _ := json.Marshal(action.SMTPConfig{Host: "10.0.0.5", Port: 25, From: "a@example.com"})
	if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "x", Kind: action.KindSMTP, Config: smtpCfg}); err == nil || !strings.Contains(err.Error(), "private") {
		t.Errorf("saving an SMTP server on 10.0.0.5: %v", err)
	}
	r.transition(enter("p_1", "vip"))
	waitFor(t, "three dead letters", func() bool { return len(r.items(store.OutboxDead)) == 3 })
	for _, it := range r.items(store.OutboxDead) {
		if it.Attempts != 1 || !strings.Contains(it.LastError, "loopback address") || !strings.Contains(it.LastError, "-allow-private-destinations") {
			t.Errorf("item %d to %s: attempts %d, error %q: want one attempt refused as loopback", it.ID, it.Destination, it.Attempts, it.LastError)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server got %d requests through the guard", n)
	}
}

// TestDeliveryLogRedactsAndCaps: a target that answers an error echoing
// the destination's secrets, and kilobytes more, leaves a short log entry
// with no secret in it; a redirect is not followed.
func TestDeliveryLogRedactsAndCaps(t *testing.T) {
	r := newRig(t, nil)
	const apiKey = "pk_live_0123456789abcdef"
	var secret atomic.Value
	secret.Store("")
	var redirected atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/moved" {
			http.Redirect(w, req, "/elsewhere", http.StatusTemporaryRedirect)
			return
		}
		if req.URL.Path == "/elsewhere" {
			redirected.Add(1)
			return
		}
		io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusBadRequest)
		// An echo of the request: the vendor key, the webhook secret, and a
		// page of noise.
		io.WriteString(w, "bad request; you sent Authorization: "+req.Header.Get("Authorization")+" secret="+secret.Load().(string)+" token "+"sess_ABCDEFGHIJKLMNOP "+strings.Repeat("x", 8000))
	}))
	defer srv.Close()
	d := r.webhook("hook", srv.URL+"/hook", 0)
	whsec, err := r.svc.Secret(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	secret.Store(whsec)
	r.webhook("moved", srv.URL+"/moved", 0)
	cfg, _ := json.Marshal(map[string]any{"base_url": srv.URL, "lists": map[string]string{"vip": "L1"}})
	if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: "klaviyo", Kind: "klaviyo", Config: cfg, Secrets: connector.Secrets{"api_key": apiKey}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"hook", "moved", "klaviyo"} {
		r.automation(action.AutomationSpec{Name: n, Segment: "vip", Destination: n})
	}
	r.transition(enter("p_1", "vip"))
	waitFor(t, "three dead letters", func() bool { return len(r.items(store.OutboxDead)) == 3 })
	for _, it := range r.items(store.OutboxDead) {
		e := it.LastError
		// Each destination's own secrets are redacted (the Klaviyo
		// destination does not know the webhook's).
		own := it.Destination == d.ID && (strings.Contains(e, whsec) || strings.Contains(e, strings.TrimPrefix(whsec, "whsec_")))
		if own || strings.Contains(e, apiKey) || strings.Contains(e, "sess_ABCDEFGHIJKLMNOP") {
			t.Errorf("delivery log of item %d echoes a secret: %q", it.ID, e)
		}
		if len(e) > 800 {
			t.Errorf("delivery log of item %d is %d bytes: %q", it.ID, len(e), e)
		}
		if strings.Contains(e, "/moved") && !strings.Contains(e, "does not follow") {
			t.Errorf("redirect logged as %q", e)
		}
		if !strings.Contains(e, "/moved") && !strings.Contains(e, "[redacted]") {
			t.Errorf("item %d: want the echo kept with the secrets redacted, got %q", it.ID, e)
		}
	}
	if redirected.Load() != 0 {
		t.Errorf("the redirect was followed")
	}
}
