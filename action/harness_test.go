package action_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

var ctx = context.Background()

// clock is a settable clock; zero means the real one.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time {
	if n := c.ns.Load(); n != 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Now()
}

func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }

// rig is a Service on a fresh SQLite file with its dispatcher running.
type rig struct {
	t      *testing.T
	path   string
	st     store.Store
	key    *connector.Key
	clock  *clock
	svc    *action.Service
	stop   func()
	cfg    action.Config
	opener func() (store.Store, error) // nil: SQLite at path
}

func newKey(t *testing.T) *connector.Key {
	raw := make([]byte, 32)
	rand.Read(raw)
	k, err := connector.NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newRig opens the store and starts the dispatcher with fast retries;
// edit tweaks the configuration first.
func newRig(t *testing.T, edit func(*action.Config)) *rig {
	t.Helper()
	return newRigWith(t, edit, nil)
}

// newRigWith is newRig on the store opener returns (nil: SQLite).
func newRigWith(t *testing.T, edit func(*action.Config), opener func() (store.Store, error)) *rig {
	t.Helper()
	r := &rig{t: t, path: filepath.Join(t.TempDir(), "k.db"), key: newKey(t), clock: &clock{}, opener: opener}
	r.cfg = action.Config{Key: r.key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: r.clock.now,
		Poll: 50 * time.Millisecond, Lease: 6 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Timeout: 2 * time.Second, Workers: 8,
		DeliveryOptions: action.DeliveryOptions{AllowPrivate: true}} // the receivers are on loopback
	if edit != nil {
		edit(&r.cfg)
	}
	r.open()
	t.Cleanup(func() { r.close() })
	return r
}

func (r *rig) open() {
	var st store.Store
	var err error
	if r.opener != nil {
		st, err = r.opener()
	} else {
		st, err = sqlite.Open(r.path)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	r.st = st
	cfg := r.cfg
	cfg.Store = st
	r.svc = action.New(cfg)
	if err := r.svc.Reload(ctx); err != nil {
		r.t.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.svc.Run(c) }()
	r.stop = func() { cancel(); <-done }
}

func (r *rig) close() {
	if r.stop != nil {
		r.stop()
		r.stop = nil
		r.st.Close()
	}
}

// restart stops the dispatcher, closes the store and opens both again.
func (r *rig) restart() {
	r.close()
	r.open()
}

// profile creates a profile with an email, traits and optional email consent.
func (r *rig) profile(id, email string, consent *bool, traits map[string]any) {
	r.t.Helper()
	res := store.Resolution{
		Profiles:   []store.ProfileChange{{ID: id, Traits: traits, EventCount: 1, At: time.Now().UTC()}},
		Identities: []kiln.Identity{{Identifier: kiln.Identifier{Kind: kiln.Email, Value: email}, ProfileID: id, FirstSeen: time.Now().UTC()}},
	}
	if consent != nil {
		res.Consent = []store.ConsentChange{{ProfileID: id, Consent: kiln.Consent{Channel: kiln.ChannelEmail, Granted: *consent, Source: "test", At: time.Now().UTC()}}}
	}
	if err := r.st.ApplyResolution(ctx, res); err != nil {
		r.t.Fatal(err)
	}
}

// transition records transitions the way the engine does: plan, apply in
// one transaction, then tell the service. It returns the transitions with
// their IDs.
func (r *rig) transition(ts ...kiln.Transition) []kiln.Transition {
	r.t.Helper()
	for i := range ts {
		if ts[i].At.IsZero() {
			ts[i].At = r.clock.now().UTC()
		}
		if ts[i].Version == 0 {
			ts[i].Version = 1
		}
		if ts[i].Reason == "" {
			ts[i].Reason = kiln.ReasonEvent
		}
	}
	for _, tr := range ts {
		if _, err := r.st.GetProfile(ctx, tr.ProfileID); store.IsNotFound(err) {
			r.profile(tr.ProfileID, tr.ProfileID+"@example.com", nil, nil)
		}
	}
	res := store.Resolution{Transitions: ts}
	if err := r.svc.Planner.Plan(ctx, &res); err != nil {
		r.t.Fatal(err)
	}
	if err := r.st.ApplyResolution(ctx, res); err != nil {
		r.t.Fatal(err)
	}
	r.svc.OnTransitions(res.Transitions)
	return res.Transitions
}

func enter(pid, seg string) kiln.Transition {
	return kiln.Transition{Segment: seg, ProfileID: pid, Entered: true, Act: true, Evidence: json.RawMessage(`{"orders":2}`)}
}

func exit(pid, seg string) kiln.Transition {
	return kiln.Transition{Segment: seg, ProfileID: pid, Entered: false, Act: true}
}

func (r *rig) webhook(name, url string, rate float64) *store.Destination {
	r.t.Helper()
	cfg, _ := json.Marshal(action.WebhookConfig{URL: url})
	d, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: name, Kind: action.KindWebhook, Config: cfg, RateLimit: rate})
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

func (r *rig) automation(spec action.AutomationSpec) *store.Automation {
	r.t.Helper()
	if spec.On == "" {
		spec.On = action.OnEnter
	}
	a, err := r.svc.CreateAutomation(ctx, spec)
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// items returns the outbox items in a state ("" for all).
func (r *rig) items(state string) []store.OutboxItem {
	r.t.Helper()
	it, err := r.st.ListOutbox(ctx, store.OutboxQuery{State: state, Limit: 10000})
	if err != nil {
		r.t.Fatal(err)
	}
	return it
}

// settled reports whether no item is pending.
func (r *rig) settled() bool { return len(r.items(store.OutboxPending)) == 0 }

// waitFor polls cond until it holds or 30 seconds pass (things take a
// second here; the margin is for a machine shared with other builds).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// receiver is a webhook endpoint that records what it accepts. status
// decides the answer to each request (nil: 200).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []received
	requests atomic.Int64
	status   func(n int64) int
}

type received struct {
	header http.Header
	body   []byte
	msg    action.Message
	at     time.Time
}

func newReceiver(t *testing.T, status func(n int64) int) *receiver {
	rc := &receiver{status: status}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := rc.requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		code := http.StatusOK
		if rc.status != nil {
			code = rc.status(n)
		}
		if code == http.StatusOK && r.Context().Err() == nil {
			// (A request whose client gave up, e.g. timed out on a loaded
			// machine, is not a delivery: the dispatcher retries it.)
			var m action.Message
			if err := json.Unmarshal(body, &m); err != nil {
				t.Errorf("webhook body is not a message: %v: %s", err, body)
			}
			rc.mu.Lock()
			rc.got = append(rc.got, received{header: r.Header.Clone(), body: body, msg: m, at: time.Now()})
			rc.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// smtpServer is a tiny SMTP server on 127.0.0.1 that records messages.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []mail
}

type mail struct {
	from string
	to   []string
	data string
}

func newSMTPServer(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *smtpServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	rd := bufio.NewReader(c)
	say := func(line string) { fmt.Fprintf(c, "%s\r\n", line) }
	say("220 test ESMTP")
	var m mail
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-test\r\n250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			from, _, _ := strings.Cut(strings.TrimSpace(line)[10:], " ")
			m = mail{from: strings.Trim(from, "<>")}
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.to = append(m.to, strings.Trim(strings.TrimSpace(line)[8:], "<>"))
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := rd.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			m.data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func (s *smtpServer) messages() []mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mail(nil), s.msgs...)
}
