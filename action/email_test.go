package action_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/action"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

// testCert makes a self-signed certificate for 127.0.0.1 and localhost,
// returned with its PEM (to trust it as ca_cert).
func testCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kiln test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// tlsSMTP is an SMTP server speaking what net/smtp expects: EHLO with
// STARTTLS and AUTH PLAIN, or implicit TLS from the first byte.
type tlsSMTP struct {
	ln       net.Listener
	implicit bool
	cfg      *tls.Config
	mu       sync.Mutex
	msgs     []tlsMail
}

type tlsMail struct {
	from, to, data, auth string
	tls                  bool
}

func newTLSSMTP(t *testing.T, cert tls.Certificate, implicit bool) *tlsSMTP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsSMTP{implicit: implicit, cfg: &tls.Config{Certificates: []tls.Certificate{cert}}}
	if implicit {
		ln = tls.NewListener(ln, s.cfg)
	}
	s.ln = ln
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

func (s *tlsSMTP) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *tlsSMTP) serve(c net.Conn) {
	defer func() { c.Close() }()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	secure := s.implicit
	rd := bufio.NewReader(c)
	say := func(line string) { fmt.Fprintf(c, "%s\r\n", line) }
	say("220 test ESMTP")
	var m tlsMail
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			if secure {
				say("250-test\r\n250-8BITMIME\r\n250 AUTH PLAIN")
			} else {
				say("250-test\r\n250-8BITMIME\r\n250 STARTTLS")
			}
		case cmd == "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(c, s.cfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, rd, secure = tc, bufio.NewReader(tc), true
		case strings.HasPrefix(cmd, "AUTH PLAIN"):
			b, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(line[len("AUTH PLAIN"):]))
			m.auth = strings.ReplaceAll(string(b), "\x00", "|")
			say("235 ok")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			from, _, _ := strings.Cut(strings.TrimSpace(line[10:]), " ") // then BODY=8BITMIME
			m.from = strings.Trim(from, "<>")
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.to = strings.Trim(line[8:], "<> ")
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
				b.WriteString(strings.TrimPrefix(l, ".")) // dot-unstuffing
			}
			m.data, m.tls = b.String(), secure
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

func (s *tlsSMTP) messages() []tlsMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tlsMail(nil), s.msgs...)
}

// TestEmailHTMLUnsubscribeTLS sends a templated HTML and text email over
// STARTTLS (with AUTH) and over implicit TLS to real SMTP servers, reads
// its MIME structure back, then follows its one-click unsubscribe link to
// Kiln's endpoint and checks that no further email is sent.
func TestEmailHTMLUnsubscribeTLS(t *testing.T) {
	var svc atomic.Pointer[action.Service]
	web := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc.Load().UnsubscribeHandler().ServeHTTP(w, r)
	}))
	defer web.Close()
	r := newRig(t, func(c *action.Config) { c.PublicURL = web.URL + "/" })
	svc.Store(r.svc)

	cert, certPEM := testCert(t)
	starttls, implicit := newTLSSMTP(t, cert, false), newTLSSMTP(t, cert, true)
	for _, d := range []struct {
		name string
		cfg  action.SMTPConfig
		sec  connector.Secrets
	}{
		{"mail-starttls", action.SMTPConfig{Host: "127.0.0.1", Port: starttls.port(), From: "Café Shop <shop@example.com>", Username: "shop", TLS: action.TLSStartTLS, CACert: certPEM}, connector.Secrets{"password": "pw-123"}},
		{"mail-465", action.SMTPConfig{Host: "127.0.0.1", Port: implicit.port(), From: "shop@example.com", TLS: action.TLSImplicit, CACert: certPEM}, nil},
	} {
		cfg, _ := json.Marshal(d.cfg)
		if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: d.name, Kind: action.KindSMTP, Config: cfg, Secrets: d.sec}); err != nil {
			t.Fatal(err)
		}
		opts, _ := json.Marshal(action.Options{Traits: []string{"name", "points"},
			Subject: "Welcome, {{.Traits.name}} ✓",
			Body:    "Hello {{.Traits.name}}, you have {{.Traits.points}} points.\nUnsubscribe: {{.UnsubscribeURL}}",
			HTML:    `<p>Hello {{.Traits.name}}, you have <b>{{.Traits.points}}</b> points.</p><a href="{{.UnsubscribeURL}}">Unsubscribe</a>`})
		r.automation(action.AutomationSpec{Name: d.name, Segment: "vip", Destination: d.name, Options: opts})
	}
	yes := true
	r.profile("p_ann", "ann@example.com", &yes, map[string]any{"name": "Ann <b>&", "points": 120})
	r.transition(enter("p_ann", "vip"))
	waitFor(t, "both emails", func() bool { return len(starttls.messages()) == 1 && len(implicit.messages()) == 1 })

	var unsub string
	for _, srv := range []*tlsSMTP{starttls, implicit} {
		m := srv.messages()[0]
		if !m.tls || m.from != "shop@example.com" || m.to != "ann@example.com" {
			t.Fatalf("envelope %+v: want it over TLS from shop@ to ann@", m)
		}
		msg, err := netmail.ReadMessage(strings.NewReader(m.data))
		if err != nil {
			t.Fatal(err)
		}
		h := msg.Header
		if from, err := h.AddressList("From"); err != nil || from[0].Address != "shop@example.com" {
			t.Errorf("From %q: %v", h.Get("From"), err)
		} else if srv == starttls && from[0].Name != "Café Shop" {
			t.Errorf("From display name %q", from[0].Name)
		}
		subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
		if subj != "Welcome, Ann <b>& ✓" {
			t.Errorf("subject %q", subj)
		}
		lu := h.Get("List-Unsubscribe")
		if !strings.HasPrefix(lu, "<"+web.URL+action.UnsubscribePath) || !strings.HasSuffix(lu, ">") || h.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
			t.Fatalf("List-Unsubscribe %q, List-Unsubscribe-Post %q", lu, h.Get("List-Unsubscribe-Post"))
		}
		unsub = strings.Trim(lu, "<>")
		mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil || mt != "multipart/alternative" || h.Get("MIME-Version") != "1.0" {
			t.Fatalf("Content-Type %q (%v), MIME-Version %q", h.Get("Content-Type"), err, h.Get("MIME-Version"))
		}
		mr := multipart.NewReader(msg.Body, params["boundary"])
		var types, bodies []string
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
				t.Errorf("part %s: encoding %q", p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"))
			}
			b, err := io.ReadAll(quotedprintable.NewReader(p))
			if err != nil {
				t.Fatal(err)
			}
			types, bodies = append(types, p.Header.Get("Content-Type")), append(bodies, string(b))
		}
		if len(types) != 2 || types[0] != "text/plain; charset=utf-8" || types[1] != "text/html; charset=utf-8" {
			t.Fatalf("parts %q: want text/plain then text/html", types)
		}
		if want := "Hello Ann <b>&, you have 120 points.\r\nUnsubscribe: " + unsub; bodies[0] != want {
			t.Errorf("text part %q, want %q", bodies[0], want)
		}
		if want := `<p>Hello Ann &lt;b&gt;&amp;, you have <b>120</b> points.</p><a href="` + unsub + `">Unsubscribe</a>`; bodies[1] != want {
			t.Errorf("html part %q, want %q", bodies[1], want)
		}
	}
	if got := starttls.messages()[0].auth; got != "|shop|pw-123" {
		t.Errorf("AUTH PLAIN after STARTTLS: %q", got)
	}

	client := web.Client()
	emailConsent := func() kiln.Consent {
		p, err := r.st.GetProfile(ctx, "p_ann")
		if err != nil {
			t.Fatal(err)
		}
		var c kiln.Consent
		for _, x := range p.Consent {
			if x.Channel == kiln.ChannelEmail && !x.At.Before(c.At) {
				c = x
			}
		}
		return c
	}
	// A scanner's GET shows the page and changes nothing.
	resp, err := client.Get(unsub)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<form method="post">`) || !emailConsent().Granted {
		t.Fatalf("GET: %d %s; consent %+v", resp.StatusCode, page, emailConsent())
	}
	// A forged or damaged token is refused.
	bad := unsub[:len(unsub)-3] + "AAA"
	if resp, err := client.Post(bad, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click")); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST of a damaged link: %v %v", resp, err)
	}
	if !emailConsent().Granted {
		t.Fatal("a damaged link unsubscribed")
	}
	// The mailbox provider's one-click POST (RFC 8058).
	resp, err = client.Post(unsub, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "You are unsubscribed") {
		t.Fatalf("one-click POST: %d %s", resp.StatusCode, page)
	}
	if c := emailConsent(); c.Granted || c.Source != "list-unsubscribe" {
		t.Fatalf("email consent after unsubscribing: %+v", c)
	}
	// The next entry sends nothing.
	r.transition(exit("p_ann", "vip"))
	r.transition(enter("p_ann", "vip"))
	waitFor(t, "the new items to finish", func() bool { return len(r.items(store.OutboxSkipped)) == 2 })
	for _, it := range r.items(store.OutboxSkipped) {
		if !strings.Contains(it.LastError, "no consent") {
			t.Errorf("item %d skipped for %q", it.ID, it.LastError)
		}
	}
	if len(starttls.messages()) != 1 || len(implicit.messages()) != 1 {
		t.Fatalf("emails after unsubscribing: %d and %d", len(starttls.messages()), len(implicit.messages()))
	}
}

// TestEmailRequiresStartTLS: a destination that requires STARTTLS never
// sends to a server without it, and a certificate nobody vouches for
// fails verification.
func TestEmailRequiresStartTLS(t *testing.T) {
	r := newRig(t, nil)
	plain := newSMTPServer(t)
	cert, _ := testCert(t)
	untrusted := newTLSSMTP(t, cert, true)
	for name, c := range map[string]action.SMTPConfig{
		"plain":     {Host: "127.0.0.1", Port: plain.port(), From: "shop@example.com", TLS: action.TLSStartTLS},
		"untrusted": {Host: "127.0.0.1", Port: untrusted.port(), From: "shop@example.com", TLS: action.TLSImplicit},
	} {
		cfg, _ := json.Marshal(c)
		if _, err := r.svc.CreateDestination(ctx, action.DestinationSpec{Name: name, Kind: action.KindSMTP, Config: cfg}); err != nil {
			t.Fatal(err)
		}
		r.automation(action.AutomationSpec{Name: name, Segment: "vip", Destination: name, Options: json.RawMessage(`{"body":"hi"}`)})
	}
	yes := true
	r.profile("p_1", "a@example.com", &yes, nil)
	r.transition(enter("p_1", "vip"))
	waitFor(t, "two dead letters", func() bool { return len(r.items(store.OutboxDead)) == 2 })
	for _, it := range r.items(store.OutboxDead) {
		if !strings.Contains(it.LastError, "STARTTLS") && !strings.Contains(it.LastError, "certificate") {
			t.Errorf("dead letter %q", it.LastError)
		}
	}
	if len(plain.messages()) != 0 || len(untrusted.messages()) != 0 {
		t.Fatal("a message went out without the required TLS")
	}
}
