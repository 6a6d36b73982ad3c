package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/engine"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// TestLifecycleSurvivesKills is issue 10's end-to-end test: the real
// binary, fed realistic Segment API traffic, is killed with SIGKILL many
// times (right after an acknowledgement, during a burst, just before
// window expiries fall due, while it rebuilds on start) and restarted
// gracefully twice, always on the same database and a new port, while a
// local webhook receiver stays up; it refuses some webhooks for a while
// (retries) or for good (dead letters, replayed during and after the
// traffic), and a manual recompute (a rebuild) runs during and after the
// traffic. Then the traffic stops, every window expires, the outbox
// drains and the log and the receiver are checked:
//
//   - no transition has reason "recompute" (neither start-up
//     reconciliation nor a manual recompute found anything to correct)
//     and no other unexpected reason;
//   - per (profile, segment) transitions alternate enter/exit from an
//     enter, with non-decreasing instants;
//   - every transition is justified: one caused by an event matches an
//     independent evaluation of the profile's events up to that event;
//     one made by time is at a window boundary of a stored event, to the
//     millisecond, and at every window boundary the recorded membership
//     agrees with the acknowledged events or with the received ones (it
//     contradicts both only if the engine recorded a false change or
//     missed a true one);
//   - the recorded membership equals the independent evaluation (and the
//     engine's as-of API) at a quiet instant after the traffic, and at the
//     end;
//   - each transition with an automation has one outbox item, delivered,
//     and the receiver got it, signed, under the item's key as webhook-id;
//     distinct webhook-ids are exactly the outbox keys, each id always
//     carries the same body, no two ids carry the same change, and each
//     profile's webhooks were first accepted in the order planned;
//   - every acknowledged event is stored, once.
//
// The definitions' windows are minutes (the language has no seconds);
// most events carry a timestamp up to a minute old, as batching clients
// send them, so windows end seconds after the events arrive and the test
// takes about three minutes.
func TestLifecycleSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("lifecycle test builds the binary, kills it and waits for windows to expire; skipped with -short")
	}
	h := newLifeHarness(t)
	h.setUp()
	h.run()
	h.finish()
	h.check()
}

// The definitions: a windowed count and sum (entries by events, exits by
// expiry), a sequence with a deadline (entries by time or by a late
// checkout, exits by time or by a late order) and an identify trait.
const lifeDefs = `
trait spend_1m = sum(properties.revenue) of "Order Completed" in last 1 minutes
segment recent_buyer { count of "Order Completed" in last 1 minutes >= 1 }
segment big_spender { spend_1m >= 150 }
segment abandoner { "Checkout Started" not followed by "Order Completed" within 1 minutes in last 2 minutes }
segment vip { traits.tier = "vip" }
`

const (
	lifeWindow    = 60_000  // ms: recent_buyer and spend_1m
	lifeWithin    = 60_000  // ms: abandoner's "within"
	lifeSeqWindow = 120_000 // ms: abandoner's "in last"
	lifeSpend     = 150.0
	lifeUsers     = 4000
	lifeProbe     = "probe-0"
)

var lifeSegments = []string{"abandoner", "big_spender", "recent_buyer", "vip"}

// lifeMember evaluates a segment for one profile at t (Unix ms) over the
// events in evs (in Seq order) that in admits, by the boundary conventions
// of package eval: a rolling window is (t-N, t]; "A not followed by B
// within T in last W" holds when some A at a in (t-W, t] has a+T <= t and
// no B in [a, a+T); identify traits apply in log order.
func lifeMember(seg string, evs []*lifeEvent, t int64, in func(*lifeEvent) bool) bool {
	switch seg {
	case "recent_buyer", "big_spender":
		n, sum := 0, 0.0
		for _, e := range evs {
			if e.name == kiln.OrderCompleted && e.ts > t-lifeWindow && e.ts <= t && in(e) {
				n++
				sum += e.revenue
			}
		}
		if seg == "recent_buyer" {
			return n >= 1
		}
		return sum >= lifeSpend
	case "abandoner":
		for _, a := range evs {
			if a.name != kiln.CheckoutStarted || a.ts <= t-lifeSeqWindow || a.ts+lifeWithin > t || !in(a) {
				continue
			}
			followed := false
			for _, b := range evs {
				if b.name == kiln.OrderCompleted && b.ts >= a.ts && b.ts < a.ts+lifeWithin && in(b) {
					followed = true
					break
				}
			}
			if !followed {
				return true
			}
		}
		return false
	case "vip":
		tier := ""
		for _, e := range evs {
			if e.typ == kiln.Identify && e.tier != "" && in(e) {
				tier = e.tier
			}
		}
		return tier == "vip"
	}
	panic("unknown segment " + seg)
}

func lifeAll(*lifeEvent) bool { return true }

// lifeEvent is a stored event as the checks see it.
type lifeEvent struct {
	seq      int64
	msgID    string
	user     string
	typ      kiln.EventType
	name     string
	ts       int64     // Unix ms, as the evaluator compares
	received time.Time // when the server received the request that stored it
	acked    time.Time // when the client saw it acknowledged; zero if never
	revenue  float64
	tier     string
}

func (e *lifeEvent) String() string {
	what := e.name
	switch {
	case e.typ == kiln.Identify:
		what = "identify tier=" + e.tier
	case e.name == kiln.OrderCompleted:
		what = fmt.Sprintf("%s revenue=%g", e.name, e.revenue)
	}
	ack := "never acknowledged"
	if !e.acked.IsZero() {
		ack = "acked " + lifeClock(e.acked)
	}
	return fmt.Sprintf("seq %d %s ts %s received %s %s", e.seq, what, lifeClock(time.UnixMilli(e.ts)), lifeClock(e.received), ack)
}

func lifeClock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// --- the harness -------------------------------------------------------------

type lifeHarness struct {
	t      *testing.T
	dir    string
	proc   *lifeProc
	recv   *lifeReceiver
	write  string
	admin  string
	autos  map[string]string // "segment/enter|exit" -> automation ID
	ledger *lifeLedger
	http   *http.Client
	rng    *mrand.Rand // controller only

	trafficStart, trafficEnd time.Time
	quiet                    time.Time           // an instant after the traffic with everything processed
	asOf                     map[string][]string // segment -> members at quiet, from the as-of API
	replayed                 int                 // dead letters replayed
}

func newLifeHarness(t *testing.T) *lifeHarness {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kiln")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building kiln: %v\n%s", err, out)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	env := append(os.Environ(), connector.KeyEnv+"="+base64.StdEncoding.EncodeToString(raw))
	h := &lifeHarness{
		t: t, dir: dir,
		proc:   &lifeProc{t: t, bin: bin, db: filepath.Join(dir, "life.db"), dir: dir, env: env},
		recv:   newLifeReceiver(),
		ledger: newLifeLedger(),
		http:   &http.Client{Timeout: 30 * time.Second},
		rng:    mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 10)),
	}
	t.Cleanup(h.proc.stop)
	t.Cleanup(h.recv.srv.Close)
	return h
}

// kiln runs a CLI command and returns its standard output.
func (h *lifeHarness) kiln(args ...string) string {
	h.t.Helper()
	cmd := exec.Command(h.proc.bin, args...)
	cmd.Env = h.proc.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("kiln %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// setUp creates the source and keys, starts the server, applies the
// definitions and creates the webhook destination and automations.
func (h *lifeHarness) setUp() {
	t := h.t
	db := h.proc.db
	h.kiln("sources", "create", "-db", db, "-name", "web")
	h.write = h.kiln("keys", "create", "-db", db, "-kind", "write", "-source", "web")
	h.admin = h.kiln("keys", "create", "-db", db, "-kind", "admin", "-name", "lifecycle-test")
	h.proc.start("first start")

	defs := filepath.Join(h.dir, "life.kiln")
	if err := os.WriteFile(defs, []byte(lifeDefs), 0o644); err != nil {
		t.Fatal(err)
	}
	api := []string{"-url", h.proc.url(), "-key", h.admin}
	h.kiln(append([]string{"apply", "-f", defs}, api...)...)
	out := h.kiln(append([]string{"destinations", "create", "-name", "receiver", "-kind", "webhook",
		"-config", fmt.Sprintf(`{"url":%q}`, h.recv.srv.URL+"/kiln")}, api...)...)
	i := strings.Index(out, "whsec_")
	if i < 0 {
		t.Fatalf("no signing secret in %q", out)
	}
	h.recv.setSecret(strings.Fields(out[i:])[0])
	for _, seg := range lifeSegments {
		for _, on := range []string{"enter", "exit"} {
			h.kiln(append([]string{"automations", "create", "-name", seg + "-" + on, "-segment", seg, "-on", on, "-destination", "receiver"}, api...)...)
		}
	}
	var list struct{ Automations []store.Automation }
	h.api("GET", "/api/v1/automations", &list)
	h.autos = map[string]string{}
	for _, a := range list.Automations {
		h.autos[a.Segment+"/"+a.On] = a.ID
	}
	if len(h.autos) != 2*len(lifeSegments) {
		t.Fatalf("automations: %+v", list.Automations)
	}
}

// recompute runs a manual recompute of every segment, a rebuild from the
// log while the server runs: with the log and the live state in
// agreement it must change nothing (what it changed would be recorded
// with reason recompute).
func (h *lifeHarness) recompute(when string) {
	out := h.kiln("segments", "recompute", "-url", h.proc.url(), "-key", h.admin)
	h.proc.note("recompute %s: %s", when, out)
	if !strings.Contains(out, ": 0 entered, 0 exited") {
		h.t.Errorf("a recompute %s changed memberships: %s", when, out)
	}
}

// replay replays the dead letters; they are delivered again under the
// same webhook-id.
func (h *lifeHarness) replay(when string) int {
	out := h.kiln("deadletters", "replay", "-url", h.proc.url(), "-key", h.admin)
	h.proc.note("dead letters replayed %s: %s", when, out)
	var n int
	if _, err := fmt.Sscanf(out, "replayed %d dead letters", &n); err != nil {
		h.t.Fatalf("deadletters replay: %q", out)
	}
	return n
}

// api calls the admin API of the running server.
func (h *lifeHarness) api(method, path string, out any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.proc.url()+path, nil)
	req.Header.Set("Authorization", "Bearer "+h.admin)
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		h.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			h.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// --- the server process --------------------------------------------------------

// lifeProc runs the server: one process at a time, on the same database,
// on a new port each time.
type lifeProc struct {
	t            *testing.T
	bin, db, dir string
	env          []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	base    string // "" while no server is up
	runs    int
	kills   int
	terms   int
	history []lifeMoment
}

type lifeMoment struct {
	at   time.Time
	what string
}

func (p *lifeProc) note(format string, args ...any) {
	p.mu.Lock()
	p.history = append(p.history, lifeMoment{time.Now(), fmt.Sprintf(format, args...)})
	p.mu.Unlock()
}

// around lists what happened to the server from 10 s before at to 5 s after.
func (p *lifeProc) around(at time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, m := range p.history {
		if m.at.After(at.Add(-10*time.Second)) && m.at.Before(at.Add(5*time.Second)) {
			fmt.Fprintf(&b, "\n      %s %s", lifeClock(m.at), m.what)
		}
	}
	if b.Len() == 0 {
		return "\n      (no start, kill or stop within 10 s)"
	}
	return b.String()
}

func (p *lifeProc) url() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base
}

// launch starts a process without waiting for it to be healthy.
func (p *lifeProc) launch() (string, *exec.Cmd, chan struct{}) {
	p.runs++
	addr := freeAddr(p.t)
	logf, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("serve-%02d.log", p.runs)))
	if err != nil {
		p.t.Fatal(err)
	}
	// The orders are in pounds; the receiver is on loopback: allowed explicitly.
	cmd := exec.Command(p.bin, "serve", "-db", p.db, "-addr", addr, "-log-level", "info", "-currency", "GBP", "-allow-private-destinations")
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	p.note("run %d started (pid %d, %s)", p.runs, cmd.Process.Pid, addr)
	return addr, cmd, exited
}

// start launches the server and waits until /readyz says the engine has
// loaded its state (the port opens before, for ingest).
func (p *lifeProc) start(why string) {
	for try := 0; try < 3; try++ {
		addr, cmd, exited := p.launch()
		deadline := time.Now().Add(2 * time.Minute) // a loaded machine rebuilds slowly
		client := &http.Client{Timeout: 2 * time.Second}
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				p.t.Logf("run %d (%s) exited before it was ready: %v\n%s", p.runs, why, cmd.ProcessState, p.logTail(p.runs))
				deadline = time.Time{}
				continue
			default:
			}
			resp, err := client.Get("http://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					p.mu.Lock()
					p.base = "http://" + addr
					p.mu.Unlock()
					p.note("run %d ready (%s)", p.runs, why)
					return
				}
			}
			time.Sleep(25 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-exited
	}
	p.t.Fatalf("the server did not start in 3 tries; last log:\n%s", p.logTail(p.runs))
}

// kill sends SIGKILL: no shutdown code runs.
func (p *lifeProc) kill(why string) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.base = ""
	p.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("SIGKILL: %v", err)
	}
	<-exited
	p.kills++
	p.note("run %d SIGKILLed (%s)", p.runs, why)
}

// term stops the server gracefully with SIGTERM; it must exit cleanly.
func (p *lifeProc) term(why string) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.base = ""
	p.mu.Unlock()
	p.note("run %d SIGTERM (%s)", p.runs, why)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-exited
		p.t.Errorf("run %d did not stop within 2 minutes of SIGTERM:\n%s", p.runs, p.logTail(p.runs))
	}
	if !cmd.ProcessState.Success() {
		p.t.Errorf("run %d stopped by SIGTERM exited with %v:\n%s", p.runs, cmd.ProcessState, p.logTail(p.runs))
	}
	p.terms++
	p.note("run %d stopped", p.runs)
}

// stop kills whatever still runs (test cleanup).
func (p *lifeProc) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
	default:
		cmd.Process.Kill()
		<-exited
	}
}

func (p *lifeProc) logTail(run int) string {
	b, _ := os.ReadFile(filepath.Join(p.dir, fmt.Sprintf("serve-%02d.log", run)))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// logLines returns the lines of every run's log that contain any of words.
func (p *lifeProc) logLines(words ...string) []string {
	var out []string
	for run := 1; run <= p.runs; run++ {
		b, _ := os.ReadFile(filepath.Join(p.dir, fmt.Sprintf("serve-%02d.log", run)))
		for _, l := range strings.Split(string(b), "\n") {
			for _, w := range words {
				if strings.Contains(l, w) {
					out = append(out, fmt.Sprintf("run %d: %s", run, l))
					break
				}
			}
		}
	}
	return out
}

// --- the webhook receiver -----------------------------------------------------

// lifeReceiver is the customer's endpoint: it verifies each webhook and
// logs it. The first time it sees an id it answers one in sixteen with
// 503 (the dispatcher retries it), one in thirty-two with 422 (a dead
// letter, replayed later) and one in sixteen slowly.
type lifeReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	got    []lifeHook
	seen   map[string]int
}

type lifeHook struct {
	id     string
	at     time.Time
	body   []byte
	verify error
	status int
}

func newLifeReceiver() *lifeReceiver {
	r := &lifeReceiver{seen: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *lifeReceiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

func (r *lifeReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := time.Now()
	id := req.Header.Get(action.HeaderID)
	r.mu.Lock()
	secret := r.secret
	first := r.seen[id] == 0
	r.seen[id]++
	r.mu.Unlock()
	h := lifeHook{id: id, at: now, body: body, verify: action.Verify(secret, req.Header, body, now), status: http.StatusOK}
	hash := fnv.New32a()
	hash.Write([]byte(id))
	switch {
	case h.verify != nil:
		h.status = http.StatusUnauthorized
	case first && hash.Sum32()%16 == 0:
		h.status = http.StatusServiceUnavailable
	case first && hash.Sum32()%16 == 1:
		time.Sleep(300 * time.Millisecond) // a slow receiver: deliveries are in flight when the server dies
	case first && hash.Sum32()%32 == 2:
		h.status = http.StatusUnprocessableEntity // permanent: a dead letter, replayed later
	}
	r.mu.Lock()
	r.got = append(r.got, h)
	r.mu.Unlock()
	w.WriteHeader(h.status)
}

func (r *lifeReceiver) hooks() []lifeHook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// --- traffic -----------------------------------------------------------------

// lifeMsg is one Segment API message and what the test needs to know of it.
type lifeMsg struct {
	body map[string]any
	id   string
	user string
	name string // track event name or "identify"
	ts   time.Time
}

// lifeLedger records what the server acknowledged, when.
type lifeLedger struct {
	mu       sync.Mutex
	acked    map[string]time.Time
	lastOC   map[string]time.Time // user -> latest timestamp of an acknowledged order
	lastCS   map[string]time.Time // user -> latest timestamp of an acknowledged checkout
	horizon  time.Time            // when the last acknowledged event leaves every window
	follow   []lifeMsg            // orders planned after checkouts, by when to send them
	followAt []time.Time
	statuses map[int]int
	errors   int
	seq      int
}

func newLifeLedger() *lifeLedger {
	return &lifeLedger{acked: map[string]time.Time{}, lastOC: map[string]time.Time{}, lastCS: map[string]time.Time{}, statuses: map[int]int{}}
}

func (l *lifeLedger) nextID(prefix string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return fmt.Sprintf("%s-%d", prefix, l.seq)
}

func (l *lifeLedger) ack(msgs []lifeMsg, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range msgs {
		l.acked[m.id] = at
		h := m.ts
		switch m.name {
		case kiln.OrderCompleted:
			if m.ts.After(l.lastOC[m.user]) {
				l.lastOC[m.user] = m.ts
			}
			h = m.ts.Add(lifeWindow * time.Millisecond)
		case kiln.CheckoutStarted:
			if m.ts.After(l.lastCS[m.user]) {
				l.lastCS[m.user] = m.ts
			}
			h = m.ts.Add(lifeSeqWindow * time.Millisecond)
		}
		if h.After(l.horizon) {
			l.horizon = h
		}
	}
}

// dues lists the instants in [from, to] at which an acknowledged event's
// window ends (as the client knows its timestamps: the server's clock-skew
// correction may move them by a few milliseconds), with the user.
func (l *lifeLedger) dues(from, to time.Time, ordersOnly bool) (at []time.Time, users []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	add := func(u string, d time.Time) {
		if !d.Before(from) && !d.After(to) {
			at, users = append(at, d), append(users, u)
		}
	}
	for u, ts := range l.lastOC {
		add(u, ts.Add(lifeWindow*time.Millisecond))
	}
	if !ordersOnly {
		for u, ts := range l.lastCS {
			add(u, ts.Add(lifeWithin*time.Millisecond))
			add(u, ts.Add(lifeSeqWindow*time.Millisecond))
		}
	}
	return at, users
}

func lifeUser(rng *mrand.Rand) string { return fmt.Sprintf("cust-%04d", rng.IntN(lifeUsers)) }

var lifeRevenues = []float64{12.5, 25, 50, 75, 100, 150}

func lifeOrder(id, user string, ts time.Time, revenue float64) lifeMsg {
	return lifeMsg{id: id, user: user, name: kiln.OrderCompleted, ts: ts, body: map[string]any{
		"type": "track", "event": kiln.OrderCompleted, "userId": user, "messageId": id, "timestamp": ts.UTC().Format(time.RFC3339Nano),
		"properties": map[string]any{"order_id": id, "revenue": revenue, "currency": "GBP",
			"products": []map[string]any{{"sku": "ARB-TP-01", "category": "teaware", "price": revenue, "quantity": 1}}},
	}}
}

// message makes one random message of the steady traffic; late is set
// near the end, when checkouts are sent at least 45 s late so the test
// need not wait two minutes for the last ones to leave their window.
func (h *lifeHarness) message(rng *mrand.Rand, late bool) lifeMsg {
	l := h.ledger
	now := time.Now()
	user := lifeUser(rng)
	id := l.nextID("m")
	past := func(max time.Duration) time.Time { return now.Add(-time.Duration(rng.Int64N(int64(max)))) }
	switch r := rng.IntN(100); {
	case r < 15: // an order, now or up to 55 s ago (a client flushing late)
		ts := now
		if rng.IntN(2) == 0 {
			ts = past(55 * time.Second)
		}
		return lifeOrder(id, user, ts, lifeRevenues[rng.IntN(len(lifeRevenues))])
	case r < 30: // a checkout; some are followed by an order, in time or not, sent on time or late
		ts := now
		switch {
		case late:
			ts = now.Add(-45*time.Second - time.Duration(rng.Int64N(int64(25*time.Second))))
		case rng.IntN(10) < 6:
			ts = past(70 * time.Second)
		}
		if rng.IntN(10) < 4 {
			ots := ts.Add(5*time.Second + time.Duration(rng.Int64N(int64(85*time.Second))))
			send := ots
			if rng.IntN(10) < 3 {
				send = send.Add(time.Second + time.Duration(rng.Int64N(int64(14*time.Second))))
			}
			l.mu.Lock()
			l.follow = append(l.follow, lifeOrder(l.nextIDLocked("f"), user, ots, lifeRevenues[rng.IntN(len(lifeRevenues))]))
			l.followAt = append(l.followAt, send)
			l.mu.Unlock()
		}
		return lifeMsg{id: id, user: user, name: kiln.CheckoutStarted, ts: ts, body: map[string]any{
			"type": "track", "event": kiln.CheckoutStarted, "userId": user, "messageId": id, "timestamp": ts.UTC().Format(time.RFC3339Nano),
			"properties": map[string]any{"checkout_id": id, "value": 75},
		}}
	case r < 38: // identify with a tier
		tier := []string{"vip", "basic", "gold"}[rng.IntN(3)]
		return lifeMsg{id: id, user: user, name: "identify", ts: now, body: map[string]any{
			"type": "identify", "userId": user, "messageId": id, "timestamp": now.UTC().Format(time.RFC3339Nano),
			"traits": map[string]any{"email": user + "@example.com", "tier": tier, "first_name": "C" + user[5:]},
		}}
	case r < 45:
		return lifeMsg{id: id, user: user, name: "page", ts: now, body: map[string]any{
			"type": "page", "userId": user, "messageId": id, "name": "Teaware", "timestamp": now.UTC().Format(time.RFC3339Nano),
		}}
	default:
		return lifeMsg{id: id, user: user, name: "Product Viewed", ts: now, body: map[string]any{
			"type": "track", "event": "Product Viewed", "userId": user, "messageId": id, "timestamp": now.UTC().Format(time.RFC3339Nano),
			"properties": map[string]any{"sku": "ARB-TP-01", "category": "teaware", "price": 43.25},
		}}
	}
}

func (l *lifeLedger) nextIDLocked(prefix string) string {
	l.seq++
	return fmt.Sprintf("%s-%d", prefix, l.seq)
}

// dueFollowUps takes the planned orders whose time to be sent has come.
func (l *lifeLedger) dueFollowUps(now time.Time, max int) []lifeMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []lifeMsg
	for i := 0; i < len(l.follow) && len(out) < max; {
		if l.followAt[i].After(now) {
			i++
			continue
		}
		out = append(out, l.follow[i])
		l.follow = slices.Delete(l.follow, i, i+1)
		l.followAt = slices.Delete(l.followAt, i, i+1)
	}
	return out
}

// deliver posts msgs as one /v1/batch, to whichever server is up, until
// one acknowledges it (as a Segment client retries) or the deadline
// passes. It reports when the acknowledgement arrived.
func (h *lifeHarness) deliver(msgs []lifeMsg, deadline time.Time) (time.Time, bool) {
	batch := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		batch[i] = m.body
	}
	l := h.ledger
	for time.Now().Before(deadline) {
		base := h.proc.url()
		if base == "" {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		body, _ := json.Marshal(map[string]any{"batch": batch, "sentAt": time.Now().UTC().Format(time.RFC3339Nano)})
		req, _ := http.NewRequest("POST", base+"/v1/batch", bytes.NewReader(body))
		req.SetBasicAuth(h.write, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := h.http.Do(req)
		if err != nil {
			l.mu.Lock()
			l.errors++
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			continue
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		at := time.Now()
		l.mu.Lock()
		l.statuses[resp.StatusCode]++
		l.mu.Unlock()
		if resp.StatusCode == 200 {
			l.ack(msgs, at)
			return at, true
		}
		if resp.StatusCode < 500 {
			h.t.Errorf("batch of %d refused: %s: %s", len(msgs), resp.Status, answer)
			return time.Time{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

// sender sends the steady traffic: small batches every 40-100 ms.
func (h *lifeHarness) sender(ctx context.Context, seed uint64, late func() bool) {
	rng := mrand.New(mrand.NewPCG(seed, 1))
	for ctx.Err() == nil {
		msgs := h.ledger.dueFollowUps(time.Now(), 5)
		for n := 1 + rng.IntN(10); len(msgs) < n; {
			msgs = append(msgs, h.message(rng, late()))
		}
		h.deliver(msgs, time.Now().Add(time.Minute))
		time.Sleep(time.Duration(40+rng.IntN(60)) * time.Millisecond)
	}
}

// burst sends a big batch: mostly browsing, some orders.
func (h *lifeHarness) burst(seed uint64, n int) {
	rng := mrand.New(mrand.NewPCG(seed, 2))
	msgs := make([]lifeMsg, n)
	now := time.Now()
	for i := range msgs {
		id := h.ledger.nextID("b")
		user := lifeUser(rng)
		if rng.IntN(10) == 0 {
			msgs[i] = lifeOrder(id, user, now.Add(-time.Duration(rng.Int64N(int64(50*time.Second)))), lifeRevenues[rng.IntN(len(lifeRevenues))])
			continue
		}
		msgs[i] = lifeMsg{id: id, user: user, name: "Product Viewed", ts: now, body: map[string]any{
			"type": "track", "event": "Product Viewed", "userId": user, "messageId": id, "timestamp": now.UTC().Format(time.RFC3339Nano),
			"properties": map[string]any{"sku": fmt.Sprintf("SKU-%d", rng.IntN(200)), "category": "teaware", "price": 43.25},
		}}
	}
	h.deliver(msgs, time.Now().Add(time.Minute))
}

// --- the run -----------------------------------------------------------------

// run sends traffic and disrupts the server: SIGKILL right after an
// acknowledgement (an order of a customer whose window is about to end),
// at random, during a burst, just before windows end, while it starts;
// SIGTERM twice. It returns when the traffic has stopped.
func (h *lifeHarness) run() {
	t := h.t
	ctx, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	var late sync.Once
	lateMode := make(chan struct{})
	isLate := func() bool {
		select {
		case <-lateMode:
			return true
		default:
			return false
		}
	}
	var senders, bursts sync.WaitGroup
	h.trafficStart = time.Now()
	for w := range 2 {
		senders.Go(func() { h.sender(ctx, uint64(w)+uint64(h.trafficStart.UnixNano()), isLate) })
	}
	pause := func(min, max time.Duration) {
		time.Sleep(min + time.Duration(h.rng.Int64N(int64(max-min))))
	}
	down := func(until time.Time) {
		if d := time.Until(until); d > 0 {
			time.Sleep(d)
		}
	}
	plan := []string{"ack", "random", "burst", "due", "term", "startup", "ack", "due", "burst", "random", "ack", "due", "term", "burst", "due", "ack"}
	time.Sleep(3 * time.Second)
	for i, kind := range plan {
		if len(plan)-i <= 5 {
			late.Do(func() { close(lateMode) })
		}
		switch kind {
		case "ack":
			// A customer whose window ends within a second orders again;
			// the server dies as soon as the order is acknowledged, and
			// stays down until the old window has ended.
			var due time.Time
			var user string
			for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
				ats, users := h.ledger.dues(time.Now().Add(150*time.Millisecond), time.Now().Add(time.Second), true)
				if len(ats) > 0 {
					k := h.rng.IntN(len(ats))
					due, user = ats[k], users[k]
					break
				}
			}
			if user == "" {
				user, due = lifeUser(h.rng), time.Now()
			}
			msg := lifeOrder(h.ledger.nextID("k"), user, time.Now(), 25)
			if _, ok := h.deliver([]lifeMsg{msg}, time.Now().Add(30*time.Second)); !ok {
				t.Fatalf("the server did not acknowledge %s", msg.id)
			}
			h.proc.kill(fmt.Sprintf("right after acknowledging %s, an order of %s whose window ended at %s", msg.id, user, lifeClock(due)))
			down(due.Add(300 * time.Millisecond))
		case "random":
			pause(0, time.Second)
			h.proc.kill("at a random moment")
		case "burst":
			for b := range 2 {
				seed := uint64(i*10 + b)
				bursts.Go(func() { h.burst(seed, 1000) })
			}
			pause(20*time.Millisecond, 400*time.Millisecond)
			h.proc.kill("during a burst of 2 x 1000 events")
		case "due":
			// Killed just before windows end; down until after they did.
			ats, _ := h.ledger.dues(time.Now().Add(300*time.Millisecond), time.Now().Add(3*time.Second), false)
			at := time.Now().Add(time.Second)
			if len(ats) > 0 {
				at = slices.MinFunc(ats, func(a, b time.Time) int { return a.Compare(b) })
			}
			down(at.Add(-10 * time.Millisecond))
			h.proc.kill(fmt.Sprintf("10 ms before a window ends at %s (%d end within 3 s)", lifeClock(at), len(ats)))
			down(at.Add(time.Second))
		case "term":
			h.proc.term("graceful restart")
		case "startup":
			h.proc.kill("at a random moment, before a restart that is killed too")
			h.proc.launch()
			pause(50*time.Millisecond, 600*time.Millisecond)
			h.proc.kill("while starting (rebuilding from the log)")
		}
		h.proc.start("after " + kind)
		if i == len(plan)/2 {
			h.recompute("during the traffic")
			h.replayed += h.replay("during the traffic")
		}
		pause(1500*time.Millisecond, 3*time.Second)
	}
	time.Sleep(3 * time.Second)
	stopTraffic()
	senders.Wait()
	bursts.Wait()
	h.trafficEnd = time.Now()
	h.proc.note("traffic stopped")

	// A quiet instant: everything sent is processed (the probe's profile
	// exists once every earlier event is), the windows are still open.
	probe := lifeMsg{id: h.ledger.nextID("probe"), user: lifeProbe, name: "identify", ts: time.Now(), body: map[string]any{
		"type": "identify", "userId": lifeProbe, "traits": map[string]any{"tier": "probe"}}}
	probe.body["messageId"] = probe.id
	if _, ok := h.deliver([]lifeMsg{probe}, time.Now().Add(time.Minute)); !ok {
		t.Fatal("the probe was not acknowledged")
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("GET", h.proc.url()+"/api/v1/profiles/user_id:"+lifeProbe, nil)
		req.Header.Set("Authorization", "Bearer "+h.admin)
		resp, err := h.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the probe event was not processed within 2 minutes")
		}
	}
	h.quiet = time.Now().Add(50 * time.Millisecond).Truncate(time.Millisecond)
	down(h.quiet.Add(100 * time.Millisecond))
	h.asOf = map[string][]string{}
	for _, seg := range lifeSegments {
		for after := ""; ; {
			var out struct {
				ProfileIDs []string
				Next       string
			}
			h.api("GET", "/api/v1/segments/"+seg+"/members?limit=10000&after="+url.QueryEscape(after)+"&as_of="+url.QueryEscape(h.quiet.UTC().Format(time.RFC3339Nano)), &out)
			h.asOf[seg] = append(h.asOf[seg], out.ProfileIDs...)
			if after = out.Next; after == "" {
				break
			}
		}
	}
	h.proc.note("quiet instant %s", lifeClock(h.quiet))
	h.recompute("after the traffic")

	// Down for 15 s while windows end, then the catch-up.
	down(h.quiet.Add(5 * time.Second))
	h.proc.kill("after the traffic, for 15 s while windows end")
	time.Sleep(15 * time.Second)
	h.proc.start("after the quiet-time kill")
}

// finish waits until every window has ended and the outbox is empty, then
// stops the server gracefully.
func (h *lifeHarness) finish() {
	t := h.t
	h.ledger.mu.Lock()
	horizon := h.ledger.horizon
	h.ledger.mu.Unlock()
	if d := time.Until(horizon.Add(2 * time.Second)); d > 0 {
		t.Logf("waiting %s for the last windows to end", d.Round(time.Second))
		time.Sleep(d)
	}
	h.drain()
	h.replayed += h.replay("at the end")
	h.drain()
	h.proc.term("end of the test")
}

// drain waits until no outbox item is pending.
func (h *lifeHarness) drain() {
	for deadline, quiet := time.Now().Add(4*time.Minute), 0; ; time.Sleep(500 * time.Millisecond) {
		var out struct{ Items []store.OutboxItem }
		h.api("GET", "/api/v1/outbox?state=pending&limit=5", &out)
		if len(out.Items) == 0 {
			if quiet++; quiet == 3 {
				return
			}
			continue
		}
		quiet = 0
		if time.Now().After(deadline) {
			h.t.Errorf("the outbox did not drain within 4 minutes; pending: %+v", out.Items)
			return
		}
	}
}

// --- the checks ----------------------------------------------------------------

// lifeProblems collects failures by kind and reports each kind once, with
// its count and the first few cases.
type lifeProblems struct {
	order []string
	cases map[string][]string
}

func (p *lifeProblems) add(kind, format string, args ...any) {
	if p.cases == nil {
		p.cases = map[string][]string{}
	}
	if _, ok := p.cases[kind]; !ok {
		p.order = append(p.order, kind)
	}
	p.cases[kind] = append(p.cases[kind], fmt.Sprintf(format, args...))
}

func (p *lifeProblems) report(t *testing.T) {
	for _, kind := range p.order {
		cs := p.cases[kind]
		shown := cs
		if len(shown) > 6 {
			shown = shown[:6]
		}
		t.Errorf("%s: %d cases; the first %d:\n  %s", kind, len(cs), len(shown), strings.Join(shown, "\n  "))
	}
}

type lifeKey struct{ pid, seg string }

func lifeDir(entered bool) string {
	if entered {
		return "enter"
	}
	return "exit"
}

// lifeRecord is what the run left behind: the database, read after the
// last stop, the client's acknowledgements and the receiver's log.
type lifeRecord struct {
	h   *lifeHarness
	bad lifeProblems

	acked    map[string]time.Time  // messageId -> when the client saw the acknowledgement
	stored   map[string]*lifeEvent // by messageId
	bySeq    map[int64]*lifeEvent
	userOf   map[string]string       // profile -> user
	evsOf    map[string][]*lifeEvent // profile -> its events in Seq order
	trs      []kiln.Transition       // in log (ID) order
	byID     map[int64]kiln.Transition
	timeline map[lifeKey][]kiln.Transition
	items    []store.OutboxItem
	members  map[lifeKey]bool
	clock    int64 // the engine clock at the end, Unix ms
	marks    []lifeMark
	hooks    []lifeHook

	// for the summary
	boundaries, ambiguous int
	quietSizes            map[string]int
	accepted              map[string][]byte // webhook-id -> body accepted
	refused, unverified   int
	deadLettered          map[string]bool
}

// lifeMark says every event up to seq was processed at instant at.
type lifeMark struct{ at, seq int64 }

func (h *lifeHarness) check() {
	t := h.t
	r := h.load()
	r.checkEvents()
	r.checkTransitions()
	r.checkBoundaries()
	r.checkMemberships()
	r.checkDeliveries()
	r.bad.report(t)

	if len(r.trs) < 500 || len(r.accepted) < 500 || h.proc.kills < 10 || h.replayed == 0 {
		t.Errorf("the run tested too little: %d transitions, %d webhooks, %d kills, %d dead letters replayed", len(r.trs), len(r.accepted), h.proc.kills, h.replayed)
	}
	lines := slices.DeleteFunc(h.proc.logLines("level=ERROR", "level=WARN", "panic"), func(l string) bool {
		return strings.Contains(l, `msg="dead letter"`) && strings.Contains(l, "HTTP 422") // the receiver refuses some on purpose
	})
	if len(lines) > 0 {
		t.Logf("warnings and errors in the server logs:\n  %s", strings.Join(lines, "\n  "))
	}
	reasons := map[string]int{}
	for _, tr := range r.trs {
		reasons[tr.Segment+"/"+tr.Reason]++
	}
	h.ledger.mu.Lock()
	statuses, connErrs := fmt.Sprint(h.ledger.statuses), h.ledger.errors
	h.ledger.mu.Unlock()
	t.Logf("traffic %s, %d runs, %d SIGKILLs, %d SIGTERMs; %d events acknowledged (%d stored; statuses %s, %d connection errors)",
		h.trafficEnd.Sub(h.trafficStart).Round(time.Second), h.proc.runs, h.proc.kills, h.proc.terms, len(r.acked), len(r.stored), statuses, connErrs)
	t.Logf("%d transitions %v; %d window boundaries checked (%d where the acknowledged and the received events disagree); sizes at the quiet instant %v",
		len(r.trs), reasons, r.boundaries, r.ambiguous, r.quietSizes)
	t.Logf("%d outbox items; %d webhooks received (%d refused on purpose, %d of them permanently; %d dead letters replayed; %d unverified), %d distinct ids accepted, %d redeliveries",
		len(r.items), len(r.hooks), r.refused, len(r.deadLettered), h.replayed, r.unverified, len(r.accepted), len(r.hooks)-r.refused-r.unverified-len(r.accepted))
}

// load reads the database (the test never links two users, so each
// user is one profile) and the receiver's log.
func (h *lifeHarness) load() *lifeRecord {
	t := h.t
	ctx := context.Background()
	st, err := sqlite.Open(h.proc.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := &lifeRecord{h: h, stored: map[string]*lifeEvent{}, bySeq: map[int64]*lifeEvent{}, userOf: map[string]string{}, evsOf: map[string][]*lifeEvent{},
		byID: map[int64]kiln.Transition{}, timeline: map[lifeKey][]kiln.Transition{}, members: map[lifeKey]bool{}, hooks: h.recv.hooks()}
	h.ledger.mu.Lock()
	r.acked = maps.Clone(h.ledger.acked)
	h.ledger.mu.Unlock()

	byUser := map[string][]*lifeEvent{}
	for after := int64(0); ; {
		evs, err := st.ReadEvents(ctx, after, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			after = e.Seq
			le := &lifeEvent{seq: e.Seq, msgID: e.MessageID, user: e.UserID, typ: e.Type, name: e.Name, ts: e.Timestamp.UnixMilli(),
				received: e.ReceivedAt, acked: r.acked[e.MessageID]}
			if v, ok := e.Properties["revenue"].(float64); ok {
				le.revenue = v
			}
			if e.Type == kiln.Identify {
				le.tier, _ = e.Traits["tier"].(string)
			}
			if prev := r.stored[e.MessageID]; prev != nil {
				r.bad.add("event stored twice", "%s: %s and %s", e.MessageID, prev, le)
			}
			r.stored[e.MessageID] = le
			r.bySeq[e.Seq] = le
			byUser[e.UserID] = append(byUser[e.UserID], le)
		}
	}
	for user, evs := range byUser {
		pid, err := st.ProfileFor(ctx, kiln.Identifier{Kind: kiln.UserID, Value: user})
		if err != nil {
			t.Fatalf("profile of %s: %v", user, err)
		}
		if r.userOf[pid] != "" {
			r.bad.add("two users in one profile", "%s holds %s and %s", pid, r.userOf[pid], user)
		}
		r.userOf[pid], r.evsOf[pid] = user, evs
	}
	for after := int64(0); ; {
		page, err := st.Transitions(ctx, store.TransitionQuery{After: after, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		r.trs = append(r.trs, page...)
		after = page[len(page)-1].ID
	}
	for _, tr := range r.trs {
		k := lifeKey{tr.ProfileID, tr.Segment}
		r.timeline[k] = append(r.timeline[k], tr)
		r.byID[tr.ID] = tr
		if tr.EventSeq > 0 {
			r.marks = append(r.marks, lifeMark{tr.At.UnixMilli(), tr.EventSeq})
		}
	}
	// The engine processes the log in Seq order, and a transition caused
	// by an event shows that event processed at its instant.
	sort.Slice(r.marks, func(i, j int) bool { return r.marks[i].at < r.marks[j].at })
	for i := 1; i < len(r.marks); i++ {
		r.marks[i].seq = max(r.marks[i].seq, r.marks[i-1].seq)
	}
	for after := int64(0); ; {
		page, err := st.ListOutbox(ctx, store.OutboxQuery{After: after, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		r.items = append(r.items, page...)
		after = page[len(page)-1].ID
	}
	err = st.ScanMemberships(ctx, func(m kiln.Membership) error {
		r.members[lifeKey{m.ProfileID, m.Segment}] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.clock, err = st.GetCheckpoint(ctx, engine.ClockCheckpoint); err != nil {
		t.Fatal(err)
	}
	return r
}

// processedBefore is the highest Seq known to be processed before instant x.
func (r *lifeRecord) processedBefore(x int64) int64 {
	i := sort.Search(len(r.marks), func(i int) bool { return r.marks[i].at >= x })
	if i == 0 {
		return 0
	}
	return r.marks[i-1].seq
}

// recorded is the membership the transition log shows just after instant x.
func (r *lifeRecord) recorded(k lifeKey, x int64) bool {
	in := false
	for _, tr := range r.timeline[k] {
		if tr.At.UnixMilli() > x {
			break
		}
		in = tr.Entered
	}
	return in
}

// describe gives the context of a problem: the profile's transitions in
// the segment, its events, and what happened to the server around at.
func (r *lifeRecord) describe(k lifeKey, at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n    profile %s (%s), segment %s; its transitions:", k.pid, r.userOf[k.pid], k.seg)
	for _, tr := range r.timeline[k] {
		fmt.Fprintf(&b, "\n      #%d %s %s reason=%s seq=%d", tr.ID, lifeClock(tr.At), lifeDir(tr.Entered), tr.Reason, tr.EventSeq)
	}
	b.WriteString("\n    its events:")
	for _, e := range r.evsOf[k.pid] {
		if e.name == kiln.OrderCompleted || e.name == kiln.CheckoutStarted || e.typ == kiln.Identify {
			b.WriteString("\n      " + e.String())
		}
	}
	b.WriteString("\n    the server around " + lifeClock(at) + ":" + r.h.proc.around(at))
	return b.String()
}

// checkEvents: (f) every acknowledged event is stored (and none twice,
// checked by load).
func (r *lifeRecord) checkEvents() {
	for id, at := range r.acked {
		if r.stored[id] == nil {
			r.bad.add("acknowledged event missing", "%s (acknowledged %s)", id, lifeClock(at))
		}
	}
}

// checkTransitions: (a) no reconciliation, (b) alternation from an
// enter with non-decreasing instants, (c) each transition justified: one
// caused by an event agrees with the profile's events up to that event,
// evaluated at the transition's instant (the engine evaluates each event
// when it processes it), and is not dated before the event arrived; one
// made by time is at a window boundary of a stored event.
func (r *lifeRecord) checkTransitions() {
	bad := &r.bad
	for k, list := range r.timeline {
		if r.userOf[k.pid] == "" {
			bad.add("transition of an unknown profile", "%s", r.describe(k, list[0].At))
			continue
		}
		evs := r.evsOf[k.pid]
		in := false
		var last time.Time
		for _, tr := range list {
			switch tr.Reason {
			case kiln.ReasonEvent, kiln.ReasonExpiry:
			case kiln.ReasonRecompute:
				bad.add("transition with reason recompute (the log was corrected)", "#%d %s %s at %s:%s", tr.ID, k.seg, lifeDir(tr.Entered), lifeClock(tr.At), r.describe(k, tr.At))
			default:
				bad.add("transition with an unexpected reason", "#%d reason %s:%s", tr.ID, tr.Reason, r.describe(k, tr.At))
			}
			if tr.Entered == in {
				bad.add("transitions do not alternate enter/exit from an enter", "#%d %s at %s:%s", tr.ID, lifeDir(tr.Entered), lifeClock(tr.At), r.describe(k, tr.At))
			}
			if tr.At.Before(last) {
				bad.add("transition instants go backwards", "#%d at %s after %s:%s", tr.ID, lifeClock(tr.At), lifeClock(last), r.describe(k, tr.At))
			}
			if tr.Version != 1 {
				bad.add("transition of another definition version", "#%d version %d", tr.ID, tr.Version)
			}
			in, last = tr.Entered, tr.At
			x := tr.At.UnixMilli()
			switch tr.Reason {
			case kiln.ReasonEvent:
				ev := r.bySeq[tr.EventSeq]
				switch {
				case ev == nil || ev.user != r.userOf[k.pid]:
					bad.add("event transition names an event of another profile", "#%d seq %d:%s", tr.ID, tr.EventSeq, r.describe(k, tr.At))
				case tr.At.Before(ev.received.Truncate(time.Millisecond)):
					bad.add("transition caused by an event is dated before the event was received", "#%d at %s, caused by %s:%s", tr.ID, lifeClock(tr.At), ev, r.describe(k, tr.At))
				case lifeMember(k.seg, evs, x, func(e *lifeEvent) bool { return e.seq <= tr.EventSeq }) != tr.Entered:
					bad.add("event transition disagrees with the profile's events up to its event", "#%d %s at %s by %s:%s", tr.ID, lifeDir(tr.Entered), lifeClock(tr.At), ev, r.describe(k, tr.At))
				}
			case kiln.ReasonExpiry:
				var name string
				var span int64
				switch {
				case (k.seg == "recent_buyer" || k.seg == "big_spender") && !tr.Entered:
					name, span = kiln.OrderCompleted, lifeWindow
				case k.seg == "abandoner" && tr.Entered:
					name, span = kiln.CheckoutStarted, lifeWithin
				case k.seg == "abandoner":
					name, span = kiln.CheckoutStarted, lifeSeqWindow
				}
				if name == "" || !slices.ContainsFunc(evs, func(e *lifeEvent) bool { return e.name == name && e.ts+span == x }) {
					bad.add("time-driven transition not at a window boundary of a stored event", "#%d %s at %s:%s", tr.ID, lifeDir(tr.Entered), lifeClock(tr.At), r.describe(k, tr.At))
				}
			}
		}
	}
}

// checkBoundaries: (c) at every window boundary of every stored event,
// the recorded membership agrees with what the engine could have known:
// at least the events acknowledged to the client, or processed, before
// the boundary; at most those received by it. Contradicting both means a
// false change (an exit while an acknowledged order kept the window open,
// say) or a missed one.
func (r *lifeRecord) checkBoundaries() {
	type boundary struct {
		seg string
		x   int64
	}
	for pid, evs := range r.evsOf {
		seen := map[boundary]bool{}
		for _, e := range evs {
			var bs []boundary
			switch e.name {
			case kiln.OrderCompleted:
				bs = []boundary{{"recent_buyer", e.ts + lifeWindow}, {"big_spender", e.ts + lifeWindow}}
			case kiln.CheckoutStarted:
				bs = []boundary{{"abandoner", e.ts + lifeWithin}, {"abandoner", e.ts + lifeSeqWindow}}
			}
			for _, b := range bs {
				if b.x > r.clock || seen[b] {
					continue
				}
				seen[b] = true
				r.boundaries++
				k := lifeKey{pid, b.seg}
				low := r.processedBefore(b.x)
				lower := lifeMember(b.seg, evs, b.x, func(e *lifeEvent) bool {
					return e.seq <= low || !e.acked.IsZero() && e.acked.UnixMilli() < b.x
				})
				upper := lifeMember(b.seg, evs, b.x, func(e *lifeEvent) bool { return e.received.UnixMilli() <= b.x })
				got := r.recorded(k, b.x)
				switch {
				case got != lower && got != upper:
					why := "a false change"
					if got == lifeMember(b.seg, evs, b.x-1, lifeAll) {
						why = "a missed change"
					}
					r.bad.add("membership at a window boundary contradicts every event the engine could have known",
						"%s at %s: log says in=%t, acknowledged events say %t, received events say %t (%s):%s",
						b.seg, lifeClock(time.UnixMilli(b.x)), got, lower, upper, why, r.describe(k, time.UnixMilli(b.x)))
				case lower != upper:
					r.ambiguous++
				}
			}
		}
	}
}

// checkMemberships: (d) at the quiet instant the log, the independent
// evaluation and the engine's as-of answer agree; at the end the stored
// memberships equal the independent evaluation and the log.
func (r *lifeRecord) checkMemberships() {
	h := r.h
	q := h.quiet.UnixMilli()
	end := time.UnixMilli(r.clock)
	r.quietSizes = map[string]int{}
	for _, seg := range lifeSegments {
		asOf := map[string]bool{}
		for _, pid := range h.asOf[seg] {
			asOf[pid] = true
		}
		for pid, evs := range r.evsOf {
			k := lifeKey{pid, seg}
			want := lifeMember(seg, evs, q, lifeAll)
			if want {
				r.quietSizes[seg]++
			}
			if got := r.recorded(k, q); got != want {
				r.bad.add("membership at the quiet instant differs from the events", "%s at %s: log says in=%t, events say %t:%s", seg, lifeClock(h.quiet), got, want, r.describe(k, h.quiet))
			}
			if asOf[pid] != want {
				r.bad.add("as-of membership at the quiet instant differs from the events", "%s at %s: as-of says in=%t, events say %t:%s", seg, lifeClock(h.quiet), asOf[pid], want, r.describe(k, h.quiet))
			}
			if want := lifeMember(seg, evs, r.clock, lifeAll); r.members[k] != want {
				r.bad.add("final membership differs from the events", "%s at %s: stored in=%t, events say %t:%s", seg, lifeClock(end), r.members[k], want, r.describe(k, end))
			}
			if r.recorded(k, r.clock) != r.members[k] {
				r.bad.add("stored membership differs from the transition log", "%s: stored in=%t:%s", seg, r.members[k], r.describe(k, end))
			}
		}
	}
	for k := range r.members {
		if r.userOf[k.pid] == "" {
			r.bad.add("stored membership of an unknown profile", "%s in %s", k.pid, k.seg)
		}
	}
}

// checkDeliveries: (e) each transition has one outbox item for its
// automation, delivered; the receiver accepted each item, verified, under
// its key as webhook-id, with the same body every time and the
// transition's content; distinct ids are exactly the keys; no change went
// out under two ids; each profile's webhooks were first accepted in the
// order planned (dead letters, which hold nothing back, aside).
func (r *lifeRecord) checkDeliveries() {
	bad := &r.bad
	itemsOf := map[int64][]store.OutboxItem{}
	keys := map[string]store.OutboxItem{}
	for _, it := range r.items {
		if prev, ok := keys[it.Key]; ok {
			bad.add("two outbox items share a key", "items %d and %d: %s", prev.ID, it.ID, it.Key)
		}
		keys[it.Key] = it
		itemsOf[it.TransitionID] = append(itemsOf[it.TransitionID], it)
		tr, ok := r.byID[it.TransitionID]
		switch {
		case !ok:
			bad.add("outbox item without its transition", "item %d: transition %d", it.ID, it.TransitionID)
		case it.Automation != r.h.autos[tr.Segment+"/"+lifeDir(tr.Entered)] || it.ProfileID != tr.ProfileID:
			bad.add("outbox item for the wrong automation or profile", "item %d (%s, %s) for #%d", it.ID, it.Automation, it.ProfileID, tr.ID)
		}
		if it.State != store.OutboxDelivered {
			bad.add("outbox item not delivered", "item %d %s: state %s after %d attempts: %s", it.ID, it.Key, it.State, it.Attempts, it.LastError)
		}
	}
	for _, tr := range r.trs {
		if n := len(itemsOf[tr.ID]); !tr.Act || n != 1 {
			bad.add("transition without exactly one outbox item", "#%d act=%t has %d items:%s", tr.ID, tr.Act, n, r.describe(lifeKey{tr.ProfileID, tr.Segment}, tr.At))
		}
	}

	type change struct {
		pid, seg string
		entered  bool
		at       int64
	}
	idsOf := map[change]map[string]bool{}
	firstOK := map[string]time.Time{}
	r.accepted, r.deadLettered = map[string][]byte{}, map[string]bool{}
	for _, hk := range r.hooks {
		if hk.verify != nil {
			r.unverified++
			bad.add("webhook fails verification", "%s: %v", hk.id, hk.verify)
			continue
		}
		if hk.status != http.StatusOK {
			r.refused++
			if hk.status == http.StatusUnprocessableEntity {
				r.deadLettered[hk.id] = true
			}
			continue
		}
		if b, ok := r.accepted[hk.id]; ok {
			if !bytes.Equal(b, hk.body) {
				bad.add("one webhook-id carries different bodies", "%s:\n      %s\n      %s", hk.id, b, hk.body)
			}
			continue
		}
		r.accepted[hk.id], firstOK[hk.id] = hk.body, hk.at
		var m action.Message
		if err := json.Unmarshal(hk.body, &m); err != nil {
			bad.add("webhook body does not decode", "%s: %v", hk.id, err)
			continue
		}
		d := m.Data
		c := change{d.ProfileID, d.Segment, d.Entered, d.At.UnixMilli()}
		if idsOf[c] == nil {
			idsOf[c] = map[string]bool{}
		}
		idsOf[c][hk.id] = true
		it, ok := keys[hk.id]
		if !ok {
			bad.add("webhook with an id that is no outbox key", "%s: %s", hk.id, hk.body)
			continue
		}
		tr := r.byID[it.TransitionID]
		wantType := action.EventExited
		if tr.Entered {
			wantType = action.EventEntered
		}
		if d.TransitionID != tr.ID || d.Segment != tr.Segment || d.ProfileID != tr.ProfileID || d.Entered != tr.Entered || !d.At.Equal(tr.At) ||
			d.Reason != tr.Reason || d.Version != tr.Version || m.Type != wantType || d.Automation != tr.Segment+"-"+lifeDir(tr.Entered) {
			bad.add("webhook differs from its transition", "%s: %s; transition %+v", hk.id, hk.body, tr)
		}
	}
	for key, it := range keys {
		if r.accepted[key] == nil {
			tr := r.byID[it.TransitionID]
			bad.add("outbox item never accepted by the receiver", "item %d %s (state %s):%s", it.ID, key, it.State, r.describe(lifeKey{it.ProfileID, tr.Segment}, tr.At))
		}
	}
	for c, ids := range idsOf {
		if len(ids) > 1 {
			bad.add("one change sent under several webhook-ids (recorded twice)", "%s %s %s at %s: %v:%s",
				c.pid, c.seg, lifeDir(c.entered), lifeClock(time.UnixMilli(c.at)), slices.Sorted(maps.Keys(ids)), r.describe(lifeKey{c.pid, c.seg}, time.UnixMilli(c.at)))
		}
	}
	lanes := map[string][]store.OutboxItem{}
	for _, it := range r.items {
		if !r.deadLettered[it.Key] {
			lanes[it.ProfileID] = append(lanes[it.ProfileID], it)
		}
	}
	for pid, lane := range lanes {
		for i := 1; i < len(lane); i++ {
			a, b := firstOK[lane[i-1].Key], firstOK[lane[i].Key]
			if !a.IsZero() && !b.IsZero() && b.Before(a) {
				bad.add("webhooks of one profile accepted out of order", "%s: item %d (#%d) accepted at %s before item %d (#%d) at %s", pid,
					lane[i].ID, lane[i].TransitionID, lifeClock(b), lane[i-1].ID, lane[i-1].TransitionID, lifeClock(a))
			}
		}
	}
}
