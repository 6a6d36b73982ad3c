package egress_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln/egress"
)

func TestCheck(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"10.1.2.3": "private", "172.16.0.1": "private", "192.168.1.1": "private", "fd00::1": "private",
		"169.254.169.254": "link-local", "fe80::1": "link-local", "0.0.0.0": "unspecified", "::": "unspecified",
		"100.64.0.1": "carrier-grade NAT", "239.1.2.3": "multicast",
		"93.184.216.34": "", "8.8.8.8": "", "2606:4700::1111": "",
	} {
		err := egress.Check(netip.MustParseAddr(addr))
		got := ""
		if b, ok := err.(*egress.BlockedError); ok {
			got = b.Reason
		} else if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if got != want {
			t.Errorf("Check(%s) reason %q, want %q", addr, got, want)
		}
	}
}

// TestClientRefusesLoopbackAfterResolution connects to a real server on
// loopback, by address and by a name that resolves to it: the guard sees
// the resolved address, so both are refused, and allowed when opted out.
func TestClientRefusesLoopbackAfterResolution(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++; io.WriteString(w, "ok") }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, u := range []string{srv.URL, "http://localhost" + port} {
		_, err := egress.Client(false, 1).Get(u)
		if !egress.Blocked(err) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("GET %s with the guard: %v, want a refused loopback connection", u, err)
		}
	}
	if hits != 0 {
		t.Fatalf("the server was reached %d times through the guard", hits)
	}
	resp, err := egress.Client(true, 1).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET with private destinations allowed: %v", err)
	}
	resp.Body.Close()
	if hits != 1 {
		t.Fatalf("hits %d, want 1", hits)
	}
	if _, err := egress.DialContext(context.Background(), false, "tcp", srv.Listener.Addr().String()); !egress.Blocked(err) {
		t.Errorf("DialContext to loopback with the guard: %v", err)
	}
}

// TestClientDoesNotFollowRedirects: a redirect (to a loopback metadata
// look-alike here) is returned, not followed.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	var followed bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/final" {
			followed = true
			return
		}
		http.Redirect(w, r, "/final", http.StatusFound)
	}))
	defer srv.Close()
	resp, err := egress.Client(true, 1).Post(srv.URL+"/hook", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || followed {
		t.Fatalf("status %d, followed %v: want the 302 itself", resp.StatusCode, followed)
	}
}
