// Package egress is how Kiln connects to the destinations its users
// configure (webhooks, vendor connectors, SMTP servers) without becoming a
// way into the network it runs in: with the guard on, a connection to a
// private, loopback, link-local or otherwise internal address is refused.
//
// The check runs in the dialer's Control hook, on the address actually
// being connected to, after DNS resolution: a name that resolves (or is
// re-bound between two lookups) to 127.0.0.1 or 169.254.169.254 is
// refused just like the literal address, and so is every hop of a
// redirect or a connection made through an HTTP proxy. Clients made here
// do not follow redirects at all: a webhook is a signed POST that a 302
// would turn into a GET, and a destination should name its final URL.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// BlockedError is a connection refused because of its address.
type BlockedError struct {
	Addr   netip.Addr
	Reason string // "loopback", "private", "link-local", ...
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("refusing to connect to %s: a %s address (destinations on private, loopback and link-local addresses are blocked; an operator can allow them with -allow-private-destinations)", e.Addr, e.Reason)
}

// internal are the ranges that are not the public internet, with the
// reason given when one is refused. Loopback, private and link-local are
// checked with netip's own predicates first.
var internal = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
}

// Check returns a *BlockedError when ip is not a public unicast address.
func Check(ip netip.Addr) error {
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	reason := ""
	switch {
	case !ip.IsValid():
		reason = "invalid"
	case ip.IsLoopback():
		reason = "loopback"
	case ip.IsPrivate():
		reason = "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		reason = "link-local"
	case ip.IsUnspecified():
		reason = "unspecified"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		reason = "multicast"
	default:
		for _, r := range internal {
			if r.p.Contains(ip) {
				reason = r.reason
				break
			}
		}
	}
	if reason == "" {
		return nil
	}
	return &BlockedError{Addr: ip, Reason: reason}
}

// control is a net.Dialer Control hook: address is the resolved IP and
// port about to be connected to.
func control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: cannot check address %q: %v", address, err)
	}
	return Check(ap.Addr())
}

// Dialer returns a dialer that refuses internal addresses unless
// allowPrivate is set.
func Dialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = control
	}
	return d
}

// Client returns an HTTP client for destinations: keeping up to
// idlePerHost connections open per host, never following redirects (the
// 3xx response is returned as is), and, unless allowPrivate, refusing
// internal addresses. The proxy is taken from the environment as usual;
// the guard then applies to the proxy's address.
func Client(allowPrivate bool, idlePerHost int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = idlePerHost
	tr.DialContext = Dialer(allowPrivate).DialContext
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Blocked reports whether err is (or wraps) a refused connection.
func Blocked(err error) bool {
	var b *BlockedError
	return errors.As(err, &b)
}

// DialContext dials with the guard; for protocols other than HTTP (SMTP).
func DialContext(ctx context.Context, allowPrivate bool, network, addr string) (net.Conn, error) {
	return Dialer(allowPrivate).DialContext(ctx, network, addr)
}
