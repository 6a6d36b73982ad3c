package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
	"github.com/kiln-cdp/kiln/store/sqlite"
)

// TestMembershipSyncChaos runs the real binary against two fake vendors
// (a Klaviyo, whose membership Kiln can list, and a Braze, which it
// cannot) that answer slowly, answer 429 with Retry-After, answer 500,
// hang, close the connection before or after applying a change, and
// enforce a rate limit, while profiles flap in and out of two segments and the server
// is SIGKILLed mid-sync twice. Then the faults stop, and for every
// (destination, segment) the vendor's membership must equal the
// segment's; a drift made at the vendor by hand is fixed by an on-demand
// reconciliation.
//
// Calls: every member the vendors accepted in a successful membership
// call is one outbox item Kiln recorded as sent, except items whose call
// succeeded but whose outcome died with the process (at least once):
//
//	members accepted <= items sent + members accepted in the lease (3s) before each kill
//
// and a successful call carries up to the vendor's batch, so calls stay
// far below members (logged with the figures).
func TestMembershipSyncChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test builds and kills the binary; skipped with -short")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 12))
	bin := buildKiln(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "chaos.db")
	raw := make([]byte, 32)
	rand.Read(raw)
	env := append(os.Environ(), connector.KeyEnv+"="+base64.StdEncoding.EncodeToString(raw))
	kiln := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kiln %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	kiln("sources", "create", "-db", db, "-name", "web")
	write := kiln("keys", "create", "-db", db, "-kind", "write", "-source", "web")
	admin := kiln("keys", "create", "-db", db, "-kind", "admin", "-name", "chaos")

	klav := newChaosFake(t, "klaviyo", seed, klaviyoHandler)
	braze := newChaosFake(t, "braze", seed+1, brazeHandler)
	fakes := []*chaosFake{klav, braze}

	srv := &chaosServer{t: t, bin: bin, db: db, env: env}
	srv.start()
	t.Cleanup(srv.stop)
	api := func() []string { return []string{"-url", srv.url(), "-key", admin} }

	defs := filepath.Join(dir, "chaos.kiln")
	os.WriteFile(defs, []byte("segment vip { traits.tier = \"vip\" }\nsegment gold { traits.level = \"gold\" }\n"), 0o644)
	kiln(append([]string{"apply", "-f", defs}, api()...)...)
	kiln(append([]string{"destinations", "create", "-name", "klaviyo", "-kind", "klaviyo",
		"-config", fmt.Sprintf(`{"base_url":%q,"lists":{"vip":"LVIP","gold":"LGOLD"},"requests_per_second":25}`, klav.srv.URL),
		"-secrets", `{"api_key":"pk_chaos"}`}, api()...)...)
	kiln(append([]string{"destinations", "create", "-name", "braze", "-kind", "braze",
		"-config", fmt.Sprintf(`{"base_url":%q,"requests_per_second":25}`, braze.srv.URL),
		"-secrets", `{"api_key":"key-chaos"}`}, api()...)...)
	segs := []string{"vip", "gold"}
	for _, d := range []string{"klaviyo", "braze"} {
		for _, seg := range segs {
			for _, on := range []string{"enter", "exit"} {
				kiln(append([]string{"automations", "create", "-name", d + "-" + seg + "-" + on, "-segment", seg, "-on", on, "-destination", d}, api()...)...)
			}
		}
	}

	// The flapping: every round, most users change tier and level at
	// random, some twice in one batch (out and back before anything can
	// be sent); the server is killed right after rounds 4 and 8.
	const users, rounds = 150, 12
	tier := make([]bool, users)  // in vip
	level := make([]bool, users) // in gold
	seen := make([]bool, users)  // identified at least once: a Kiln profile
	msg := 0
	identify := func(i int) map[string]any {
		msg++
		tr, lv := "basic", "silver"
		if tier[i] {
			tr = "vip"
		}
		if level[i] {
			lv = "gold"
		}
		return map[string]any{"type": "identify", "userId": fmt.Sprintf("u%d", i), "messageId": fmt.Sprintf("m%d", msg),
			"traits": map[string]any{"email": fmt.Sprintf("u%d@example.com", i), "tier": tr, "level": lv}}
	}
	var kills []time.Time
	for round := range rounds {
		var batch []map[string]any
		for i := range users {
			if rng.IntN(10) < 6 {
				continue
			}
			if rng.IntN(10) == 0 { // out and back in one batch
				tier[i] = !tier[i]
				batch = append(batch, identify(i))
				tier[i] = !tier[i]
			} else {
				tier[i] = rng.IntN(2) == 0
			}
			level[i] = rng.IntN(3) == 0
			seen[i] = true
			batch = append(batch, identify(i))
		}
		srv.send(write, batch)
		if round == 4 || round == 8 {
			time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond) // mid-sync
			kills = append(kills, time.Now())
			srv.kill()
			srv.start()
		} else {
			time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		}
	}
	want := map[string]map[int]bool{"vip": {}, "gold": {}}
	for i := range users {
		if tier[i] {
			want["vip"][i] = true
		}
		if level[i] {
			want["gold"][i] = true
		}
	}
	// The faults go on a while, then stop; the rate limits stay.
	time.Sleep(2 * time.Second)
	for _, f := range fakes {
		f.setChaos(false)
	}
	converged := func(what string) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			var diffs []string
			for _, f := range fakes {
				for _, seg := range segs {
					if got := f.members(seg); !sameSet(got, want[seg]) {
						diffs = append(diffs, fmt.Sprintf("%s %s: vendor has %d, segment %d (%s)", f.name, seg, len(got), len(want[seg]), diffSets(got, want[seg])))
					}
				}
			}
			if len(diffs) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the vendors did not converge:\n%s\n%s", what, strings.Join(diffs, "\n"), srv.logTail())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	converged("after the chaos")
	t.Logf("converged %.1fs after the last round", time.Since(srv.lastSend).Seconds())

	// Drift at Klaviyo by hand: a member taken off, a non-member added.
	var gone, extra int = -1, -1
	for i := range users {
		if want["vip"][i] && gone < 0 {
			gone = i
		}
		if !want["vip"][i] && seen[i] && extra < 0 {
			extra = i
		}
	}
	klav.setMember("vip", gone, false)
	klav.setMember("vip", extra, true)
	out := kiln(append([]string{"destinations", "reconcile", "klaviyo"}, api()...)...)
	t.Logf("kiln destinations reconcile klaviyo:\n%s", out)
	if !strings.Contains(out, "1 adds and 1 removes queued") || !regexp.MustCompile(`(?m)^vip\s+listed\s`).MatchString(out) {
		t.Fatalf("reconciling klaviyo: %s", out)
	}
	converged("after reconciling klaviyo")
	out = kiln(append([]string{"destinations", "reconcile", "braze"}, api()...)...)
	t.Logf("kiln destinations reconcile braze:\n%s", out)
	if !regexp.MustCompile(`(?m)^vip\s+reasserted\s`).MatchString(out) {
		t.Fatalf("reconciling braze: %s", out)
	}
	time.Sleep(500 * time.Millisecond)
	converged("after reconciling braze")
	srv.waitSettled(admin)
	srv.stop()

	// The figures, from the outbox.
	st, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dests, _ := st.ListDestinations(context.Background())
	name := map[string]string{}
	for _, d := range dests {
		name[d.ID] = d.Name
	}
	type tally struct{ sent, attempts, inSync, superseded, dead, pending int }
	tallies := map[string]*tally{"klaviyo": {}, "braze": {}}
	for after := int64(0); ; {
		items, err := st.ListOutbox(context.Background(), store.OutboxQuery{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			ty := tallies[name[it.Destination]]
			ty.attempts += it.Attempts
			switch {
			case it.State == store.OutboxDelivered && it.Attempts > 0:
				ty.sent++
			case strings.HasPrefix(it.LastError, "in sync: "):
				ty.inSync++
			case strings.HasPrefix(it.LastError, "superseded "):
				ty.superseded++
			case it.State == store.OutboxDead:
				ty.dead++
				t.Errorf("dead letter at %s: %s", name[it.Destination], it.LastError)
			case it.State == store.OutboxPending:
				ty.pending++
			}
		}
		after = items[len(items)-1].ID
	}
	faults := 0
	for _, f := range fakes {
		ty := tallies[f.name]
		s := f.stats()
		slack := 0
		for _, k := range kills {
			slack += f.acceptedBetween(k.Add(-3*time.Second), k) // a lease
		}
		// Calls: a wave of changes (a round, a restart's reclaimed items,
		// a reconciliation) goes in at most a few calls per (segment, op)
		// when the batches are not full; the members of a failed call are
		// retried each with its own backoff, so each may cost a call.
		waves := rounds + len(kills) + 1
		callBound := 3*2*len(segs)*waves + s.faultedMembers
		t.Logf("%s: %d requests (%d slowed down; %d injected faults: %d 429, %d 500, %d hung, %d closed, %d of them after applying; %d refused by the rate limit); "+
			"%d successful membership calls carrying %d members (%.1f a call); outbox: %d items sent in %d attempts, %d in sync, %d superseded; "+
			"bounds: members accepted %d <= items sent %d + %d in flight at the kills; successful calls %d <= %d (3 a wave per segment and op over %d waves + %d members in faulted calls)",
			f.name, s.requests, s.slow, s.faults, s.f429, s.f500, s.hung, s.closed, s.ambiguous, s.rateLimited,
			s.okCalls, s.okMembers, float64(s.okMembers)/float64(max(1, s.okCalls)), ty.sent, ty.attempts, ty.inSync, ty.superseded,
			s.okMembers, ty.sent, slack, s.okCalls, callBound, waves, s.faultedMembers)
		if s.okCalls > callBound {
			t.Errorf("%s: %d successful membership calls, more than the batching bound %d", f.name, s.okCalls, callBound)
		}
		if s.okMembers > ty.sent+slack {
			t.Errorf("%s accepted %d members in successful calls, more than the %d items sent and %d in flight at the kills: a change was sent twice beyond at least once", f.name, s.okMembers, ty.sent, slack)
		}
		if ty.pending > 0 {
			t.Errorf("%s: %d items still pending", f.name, ty.pending)
		}
		if s.okCalls == 0 {
			t.Errorf("%s: no successful membership call: the test exercised nothing", f.name)
		}
		faults += s.faults
		if s.rateLimited > s.requests/10 {
			t.Errorf("%s refused %d of %d requests for its rate limit: Kiln does not pace its calls", f.name, s.rateLimited, s.requests)
		}
	}
	if faults == 0 {
		t.Error("no fault was injected: the test exercised nothing")
	}
}

// --- the server -------------------------------------------------------------

type chaosServer struct {
	t        *testing.T
	bin, db  string
	env      []string
	addr     string
	cmd      *exec.Cmd
	logs     bytes.Buffer
	logMu    sync.Mutex
	lastSend time.Time
}

func (s *chaosServer) url() string { return "http://" + s.addr }

func (s *chaosServer) Write(p []byte) (int, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.logs.Write(p)
}

func (s *chaosServer) logTail() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	b := s.logs.Bytes()
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (s *chaosServer) start() {
	s.t.Helper()
	s.addr = freeAddr(s.t)
	s.cmd = exec.Command(s.bin, "serve", "-db", s.db, "-addr", s.addr, "-log-level", "warn", "-allow-private-destinations",
		"-delivery-lease", "3s", "-delivery-max-backoff", "2s", "-reconcile-every", "0")
	s.cmd.Env = s.env
	s.cmd.Stderr = s
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	waitHealthy(s.t, s.url())
}

// kill sends SIGKILL: no shutdown code runs.
func (s *chaosServer) kill() {
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	s.cmd.Wait()
}

func (s *chaosServer) stop() {
	if s.cmd == nil || s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// send posts one /v1/batch until the server acknowledges it.
func (s *chaosServer) send(key string, batch []map[string]any) {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"batch": batch})
	for try := 0; ; try++ {
		req, _ := http.NewRequest("POST", s.url()+"/v1/batch", bytes.NewReader(body))
		req.SetBasicAuth(key, "")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				s.lastSend = time.Now()
				return
			}
		}
		if try == 50 {
			s.t.Fatalf("the server does not take a batch: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitSettled waits until the outbox has no pending item.
func (s *chaosServer) waitSettled(admin string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("GET", s.url()+"/api/v1/outbox?state=pending&limit=1", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var out struct{ Items []json.RawMessage }
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(out.Items) == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the outbox did not settle\n%s", s.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// --- the fake vendors ---------------------------------------------------------

// chaosFake is a vendor's API as a real HTTP server, with faults injected
// while chaos is on and a rate limit always.
type chaosFake struct {
	t      *testing.T
	name   string
	srv    *httptest.Server
	handle func(f *chaosFake, r *http.Request, body []byte) vendorAnswer

	mu     sync.Mutex
	rng    *mrand.Rand
	chaos  bool
	tokens float64
	last   time.Time
	lists  map[string]map[string]bool // vendor list -> member key -> on it
	people map[string]string          // Klaviyo: email -> profile id
	ok     []okCall
	counts fakeStats
	keyOf  func(i int) string // a user's member key
	listOf map[string]string  // segment -> vendor list
}

type okCall struct {
	at      time.Time
	members int
}

type fakeStats struct {
	requests, faults, f429, f500, hung, closed, ambiguous, rateLimited, okCalls, okMembers, slow int
	faultedMembers                                                                               int // members in membership calls that got a fault
}

// vendorAnswer is what a request does: its answer, and for a membership
// change the members it carries and how to apply it.
type vendorAnswer struct {
	status  int
	header  map[string]string
	body    any
	members int    // > 0: a membership change
	apply   func() // under f.mu
}

const fakeRate, fakeBurst = 40.0, 40.0

func newChaosFake(t *testing.T, name string, seed uint64, handle func(*chaosFake, *http.Request, []byte) vendorAnswer) *chaosFake {
	f := &chaosFake{t: t, name: name, handle: handle, rng: mrand.New(mrand.NewPCG(seed, 7)), chaos: true, tokens: fakeBurst, last: time.Now(),
		lists: map[string]map[string]bool{}, people: map[string]string{}}
	if name == "klaviyo" {
		f.keyOf = func(i int) string { return fmt.Sprintf("u%d@example.com", i) }
		f.listOf = map[string]string{"vip": "LVIP", "gold": "LGOLD"}
	} else {
		f.keyOf = func(i int) string { return fmt.Sprintf("u%d", i) }
		f.listOf = map[string]string{"vip": "vip", "gold": "gold"}
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *chaosFake) setChaos(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.chaos = on
}

func (f *chaosFake) stats() fakeStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts
}

func (f *chaosFake) acceptedBetween(from, to time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.ok {
		if c.at.After(from) && !c.at.After(to) {
			n += c.members
		}
	}
	return n
}

// members returns the users on a segment's list, by index.
func (f *chaosFake) members(seg string) map[int]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]bool{}
	for k, in := range f.lists[f.listOf[seg]] {
		if !in {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(k, "u"), "@example.com"))
		if err != nil {
			out[-1] = true // a stranger
			continue
		}
		out[i] = true
	}
	return out
}

func (f *chaosFake) setMember(seg string, i int, in bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keyOf(i)
	f.list(f.listOf[seg])[k] = in
	if f.name == "klaviyo" {
		f.people[k] = "kp_" + k // a list member is a Klaviyo profile
	}
}

func (f *chaosFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.counts.requests++
	now := time.Now()
	f.tokens = min(fakeBurst, f.tokens+now.Sub(f.last).Seconds()*fakeRate)
	f.last = now
	if f.tokens < 1 {
		f.counts.rateLimited++
		f.mu.Unlock()
		throttle(w)
		return
	}
	f.tokens--
	fault := -1
	if f.chaos {
		fault = f.rng.IntN(100)
	}
	f.mu.Unlock()
	a := f.handle(f, r, body)
	count := func(c *int) {
		f.mu.Lock()
		f.counts.faults++
		f.counts.faultedMembers += a.members
		*c++
		f.mu.Unlock()
	}
	switch {
	case fault < 0 || fault >= 30:
	case fault >= 22: // slow (100-450ms; a Klaviyo call of several requests may time out)
		time.Sleep(time.Duration(100+50*(fault-22)) * time.Millisecond)
		f.mu.Lock()
		f.counts.slow++
		f.mu.Unlock()
	case fault < 7:
		count(&f.counts.f429)
		throttle(w)
		return
	case fault < 12:
		count(&f.counts.f500)
		http.Error(w, `{"message":"internal error"}`, http.StatusInternalServerError)
		return
	case fault < 15:
		count(&f.counts.hung)
		hang(r)
		return
	case fault < 18:
		count(&f.counts.closed)
		closeConn(w)
		return
	default: // applied, then the answer is lost
		f.mu.Lock()
		if a.apply != nil {
			a.apply()
		}
		if a.members > 0 {
			f.counts.ambiguous++
		}
		f.mu.Unlock()
		if fault < 20 {
			count(&f.counts.closed)
			closeConn(w)
		} else {
			count(&f.counts.hung)
			hang(r)
		}
		return
	}
	f.mu.Lock()
	if a.apply != nil {
		a.apply()
	}
	if a.members > 0 && a.status < 300 {
		f.counts.okCalls++
		f.counts.okMembers += a.members
		f.ok = append(f.ok, okCall{at: time.Now(), members: a.members})
	}
	f.mu.Unlock()
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	if a.body != nil {
		json.NewEncoder(w).Encode(a.body)
	}
}

func throttle(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	io.WriteString(w, `{"errors":[{"status":429,"code":"throttled","detail":"Request was throttled."}],"message":"rate limited"}`)
}

func hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

func closeConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
		}
	}
}

func (f *chaosFake) list(id string) map[string]bool {
	if f.lists[id] == nil {
		f.lists[id] = map[string]bool{}
	}
	return f.lists[id]
}

var (
	klavFilterRE = regexp.MustCompile(`^any\(email,(\[.*\])\)$`)
	klavRelRE    = regexp.MustCompile(`^/api/lists/([^/]+)/relationships/profiles$`)
	klavListRE   = regexp.MustCompile(`^/api/lists/([^/]+)/profiles$`)
)

// klaviyoHandler plays the Klaviyo endpoints the connector uses: profile
// lookup by email, profile import, list relationships and list members.
func klaviyoHandler(f *chaosFake, r *http.Request, body []byte) vendorAnswer {
	bad := vendorAnswer{status: 400, body: map[string]any{"errors": []any{map[string]any{"status": 400, "code": "invalid"}}}}
	if r.Header.Get("Authorization") != "Klaviyo-API-Key pk_chaos" {
		return vendorAnswer{status: 401}
	}
	profile := func(email, id string) map[string]any {
		return map[string]any{"type": "profile", "id": id, "attributes": map[string]any{"email": email}}
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/profiles":
		m := klavFilterRE.FindStringSubmatch(r.URL.Query().Get("filter"))
		var emails []string
		if m == nil || json.Unmarshal([]byte(m[1]), &emails) != nil {
			return bad
		}
		data := []any{}
		f.mu.Lock()
		for _, e := range emails {
			if id, ok := f.people[e]; ok {
				data = append(data, profile(e, id))
			}
		}
		f.mu.Unlock()
		return vendorAnswer{status: 200, body: map[string]any{"data": data}}
	case r.Method == "POST" && r.URL.Path == "/api/profile-import":
		var q struct {
			Data struct {
				Attributes struct {
					Email string `json:"email"`
				}
			}
		}
		if json.Unmarshal(body, &q) != nil || q.Data.Attributes.Email == "" {
			return bad
		}
		e := strings.ToLower(q.Data.Attributes.Email)
		id := "kp_" + e
		return vendorAnswer{status: 201, body: map[string]any{"data": profile(e, id)}, apply: func() { f.people[e] = id }}
	case klavRelRE.MatchString(r.URL.Path) && (r.Method == "POST" || r.Method == "DELETE"):
		list := klavRelRE.FindStringSubmatch(r.URL.Path)[1]
		var q struct{ Data []struct{ ID string } }
		if json.Unmarshal(body, &q) != nil || len(q.Data) == 0 || len(q.Data) > 1000 {
			return bad
		}
		return vendorAnswer{status: 204, members: len(q.Data), apply: func() {
			for _, d := range q.Data {
				f.list(list)[strings.TrimPrefix(d.ID, "kp_")] = r.Method == "POST"
			}
		}}
	case r.Method == "GET" && klavListRE.MatchString(r.URL.Path):
		list := klavListRE.FindStringSubmatch(r.URL.Path)[1]
		size, _ := strconv.Atoi(r.URL.Query().Get("page[size]"))
		off, _ := strconv.Atoi(r.URL.Query().Get("page[cursor]"))
		if size <= 0 || size > 100 {
			return bad
		}
		f.mu.Lock()
		var on []string
		for k, in := range f.list(list) {
			if in {
				on = append(on, k)
			}
		}
		f.mu.Unlock()
		slices.Sort(on)
		data := []any{}
		for i := off; i < len(on) && i < off+size; i++ {
			data = append(data, profile(on[i], "kp_"+on[i]))
		}
		links := map[string]any{"self": "https://a.klaviyo.com" + r.URL.Path}
		if off+size < len(on) {
			links["next"] = "https://a.klaviyo.com" + r.URL.Path + "?" + url.Values{"page[cursor]": {strconv.Itoa(off + size)}}.Encode()
		}
		return vendorAnswer{status: 200, body: map[string]any{"data": data, "links": links}}
	}
	return bad
}

// brazeHandler plays Braze's /users/track with the kiln_segments array
// attribute, keyed by external id.
func brazeHandler(f *chaosFake, r *http.Request, body []byte) vendorAnswer {
	if r.Method != "POST" || r.URL.Path != "/users/track" || r.Header.Get("Authorization") != "Bearer key-chaos" {
		return vendorAnswer{status: 400, body: map[string]any{"message": "bad request"}}
	}
	var q struct {
		Attributes []map[string]any `json:"attributes"`
	}
	if json.Unmarshal(body, &q) != nil || len(q.Attributes) == 0 || len(q.Attributes) > 75 {
		return vendorAnswer{status: 400, body: map[string]any{"message": "bad body"}}
	}
	return vendorAnswer{status: 201, body: map[string]any{"message": "success", "errors": []any{}}, members: len(q.Attributes), apply: func() {
		for _, o := range q.Attributes {
			id, _ := o["external_id"].(string)
			ops, _ := o["kiln_segments"].(map[string]any)
			for op, v := range ops {
				for _, s := range v.([]any) {
					f.list(s.(string))[id] = op == "add"
				}
			}
		}
	}}
}

func sameSet(got, want map[int]bool) bool {
	if len(got) != len(want) {
		return false
	}
	for k := range want {
		if !got[k] {
			return false
		}
	}
	return true
}

func diffSets(got, want map[int]bool) string {
	var extra, missing []int
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(extra)
	slices.Sort(missing)
	return fmt.Sprintf("extra %v, missing %v", extra, missing)
}
