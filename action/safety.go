package action

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/egress"
)

// DeliveryOptions are the dispatcher's settings for reaching destinations
// safely; Config embeds them.
type DeliveryOptions struct {
	// AllowPrivate lets destinations (webhooks, connectors, SMTP servers)
	// be on private, loopback and link-local addresses. Off, such a
	// connection is refused after DNS resolution (package egress) and the
	// item is a dead letter at once. kiln demo and tests with local
	// receivers turn it on; a caller-supplied HTTPClient is used as is.
	AllowPrivate bool
	// PublicURL is the server's base URL as email recipients reach it
	// (https://kiln.example.com); emails carry a one-click unsubscribe
	// link under it. Empty: emails go without List-Unsubscribe.
	PublicURL string

	key *connector.Key // Config.Key, for unsubscribe tokens
}

// refusePrivate refuses, when a destination is saved, a literal address
// the egress guard would refuse at every delivery, so the mistake shows
// at once rather than as dead letters. Names are left to the guard, which
// checks what they resolve to each time they are connected to.
func refusePrivate(kind string, cfg json.RawMessage) error {
	var c struct {
		URL     string `json:"url"`      // webhook
		Host    string `json:"host"`     // smtp
		BaseURL string `json:"base_url"` // connectors
	}
	json.Unmarshal(cfg, &c) // checkConfig decoded it strictly already
	host := c.Host
	for _, raw := range []string{c.URL, c.BaseURL} {
		if u, err := url.Parse(raw); err == nil && raw != "" {
			host = u.Hostname()
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil
	}
	if err := egress.Check(ip); err != nil {
		return kiln.Errorf(kiln.EInvalid, "%s destination: %v", kind, err)
	}
	return nil
}

// maxResponse bounds what a destination's answer may add to the delivery
// log: enough for a vendor's error message, too little to store (or show
// in the UI) whatever a misbehaving target sends back.
const maxResponse = 512

// redactor keeps a destination's own secrets out of what its answers put
// in the delivery log: an echo service or a verbose error page repeating
// the Authorization header must not reveal the key to whoever reads
// dead letters.
type redactor struct {
	secrets []string // longest first, so a secret containing another goes whole
}

// bearer matches credentials in an echoed Authorization header whatever
// their value: the request's own secret is redacted by value, this also
// catches a token we did not send (a vendor's session in an error page).
var bearer = regexp.MustCompile(`(?i)\b(bearer|basic|token|api-key)(\s+|=)[A-Za-z0-9._~+/=:-]{8,}`)

func newRedactor(s connector.Secrets) redactor {
	var r redactor
	add := func(v string) {
		if len(v) >= 4 { // shorter values would redact ordinary words
			r.secrets = append(r.secrets, v)
		}
	}
	for _, v := range s {
		add(v)
		add(url.QueryEscape(v))
		add(base64.StdEncoding.EncodeToString([]byte(v)))
		if j, err := json.Marshal(v); err == nil {
			add(strings.Trim(string(j), `"`))
		}
		if rest, ok := strings.CutPrefix(v, "whsec_"); ok {
			add(rest)
		}
	}
	// Longest first: a secret's escaped form may contain the secret.
	for i := 1; i < len(r.secrets); i++ {
		for j := i; j > 0 && len(r.secrets[j]) > len(r.secrets[j-1]); j-- {
			r.secrets[j], r.secrets[j-1] = r.secrets[j-1], r.secrets[j]
		}
	}
	return r
}

func (r redactor) redact(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return bearer.ReplaceAllString(s, "$1$2[redacted]")
}

// capText cuts s to n bytes on a character boundary.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// guarded wraps a destination's sender: its errors go to the delivery
// log redacted and with the destination's answer capped.
type guarded struct {
	kind string
	s    sender
	r    redactor
}

func (g guarded) send(ctx context.Context, d *delivery) error {
	return g.clean(g.s.send(ctx, d))
}

// maxBatch is what the wrapped sender takes in one call (1 unless it batches).
func (g guarded) maxBatch() int {
	if b, ok := g.s.(batchSender); ok {
		return b.maxBatch()
	}
	return 1
}

// sendBatch sends ds in one call of the wrapped sender, which must batch.
func (g guarded) sendBatch(ctx context.Context, ds []*delivery) []error {
	errs := g.s.(batchSender).sendBatch(ctx, ds)
	for i, err := range errs {
		errs[i] = g.clean(err)
	}
	return errs
}

func (g guarded) clean(err error) error {
	if err == nil {
		return nil
	}
	var ce *connector.Error
	if !errors.As(err, &ce) {
		// Not classified: retryable, as connector.Retryable treats it.
		ce = &connector.Error{Vendor: g.kind, Code: kiln.EUnavailable, Retryable: true, Message: err.Error(), Err: err}
	}
	out := *ce
	out.Request = g.r.redact(out.Request)
	out.Message = capText(g.r.redact(out.Message), maxResponse)
	return &out
}
