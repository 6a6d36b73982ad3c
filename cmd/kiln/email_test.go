package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
)

// TestEmailUnsubscribeThroughServer: a server with -public-url sends an
// email whose List-Unsubscribe link points at itself; the one-click POST
// to it withdraws the customer's email consent.
func TestEmailUnsubscribeThroughServer(t *testing.T) {
	setSecretKey(t)
	addr := freeAddr(t)
	m, admin, write := testMainWith(t, "", func(c *Config) { c.Addr, c.PublicURL = addr, "http://"+addr })
	smtp := newMailSink(t)

	t.Setenv("KILN_URL", m.URL())
	t.Setenv("KILN_ADMIN_KEY", admin)
	if out, errs, err := kilnCmd(t, "apply", "-f", writeTemp(t, `segment buyers "Bought something" {
  count of "Order Completed" all time >= 1
}
`)); err != nil {
		t.Fatalf("apply: %v %s %s", err, out, errs)
	}
	if st := call(t, "POST", m.URL()+"/api/v1/destinations", admin, map[string]any{"name": "mail", "kind": "smtp",
		"config": map[string]any{"host": "127.0.0.1", "port": smtp.port(), "from": "shop@example.com", "tls": "none"}}, nil); st != 201 {
		t.Fatalf("create smtp destination: %d", st)
	}
	if st := call(t, "POST", m.URL()+"/api/v1/automations", admin, map[string]any{"name": "thanks", "segment": "buyers", "on": "enter", "destination": "mail",
		"options": map[string]any{"traits": []string{"name"}, "subject": "Thanks {{.Traits.name}}", "body": "Hi {{.Traits.name}}", "html": "<p>Hi {{.Traits.name}}</p>"}}, nil); st != 201 {
		t.Fatalf("create automation: %d", st)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	postJSON(t, m.URL()+"/v1/batch", write, map[string]any{"batch": []map[string]any{
		{"type": "identify", "userId": "ann", "messageId": "i1", "timestamp": now, "traits": map[string]any{"name": "Ann", "email": "ann@example.com", "email_consent": true}},
		{"type": "track", "userId": "ann", "event": "Order Completed", "messageId": "o1", "timestamp": now, "properties": map[string]any{"revenue": 20}},
	}}, false)
	settle(t, m)
	waitUntil(t, "the email", func() bool { return len(smtp.messages()) == 1 })
	msg, err := mail.ReadMessage(strings.NewReader(smtp.messages()[0]))
	if err != nil {
		t.Fatal(err)
	}
	link := strings.Trim(msg.Header.Get("List-Unsubscribe"), "<>")
	if !strings.HasPrefix(link, "http://"+addr+"/unsubscribe/") || msg.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" ||
		!strings.HasPrefix(msg.Header.Get("Content-Type"), "multipart/alternative;") {
		t.Fatalf("headers %v", msg.Header)
	}
	resp, err := http.Post(link, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("one-click unsubscribe: %d", resp.StatusCode)
	}
	pid, err := m.Store.ProfileFor(t.Context(), kiln.Identifier{Kind: kiln.Email, Value: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Store.GetProfile(t.Context(), pid)
	if err != nil {
		t.Fatal(err)
	}
	var latest kiln.Consent
	for _, c := range p.Consent {
		if c.Channel == kiln.ChannelEmail && !c.At.Before(latest.At) {
			latest = c
		}
	}
	if latest.Granted || latest.Source != "list-unsubscribe" {
		t.Fatalf("email consent after unsubscribing: %+v", p.Consent)
	}
}

// mailSink is a plain SMTP server keeping each message's DATA.
type mailSink struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
}

func newMailSink(t *testing.T) *mailSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &mailSink{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *mailSink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *mailSink) serve(c net.Conn) {
	defer c.Close()
	rd := bufio.NewReader(c)
	fmt.Fprint(c, "220 sink\r\n")
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			fmt.Fprint(c, "250 sink\r\n")
		case cmd == "DATA":
			fmt.Fprint(c, "354 go\r\n")
			var b strings.Builder
			for {
				l, err := rd.ReadString('\n')
				if err != nil || l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, b.String())
			s.mu.Unlock()
			fmt.Fprint(c, "250 queued\r\n")
		case cmd == "QUIT":
			fmt.Fprint(c, "221 bye\r\n")
			return
		default:
			fmt.Fprint(c, "250 ok\r\n")
		}
	}
}

func (s *mailSink) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// writeTemp writes definitions to a temporary file and returns its path.
func writeTemp(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "defs.kiln")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
