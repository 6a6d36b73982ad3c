package action

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (https://www.standardwebhooks.com): the signed content
// is "{webhook-id}.{webhook-timestamp}.{body}", the signature is the
// base64 HMAC-SHA256 of it under the secret's bytes, sent as "v1,<sig>"
// (space-separated when there are several), and the secret is written
// "whsec_" followed by its base64.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
	secretPrefix    = "whsec_"
)

// Tolerance is how far a webhook's timestamp may be from the receiver's
// clock before Verify refuses it as a replay.
const Tolerance = 5 * time.Minute

// NewSecret returns a random signing secret in "whsec_" form.
func NewSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("action: no randomness: " + err.Error())
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// secretBytes decodes a "whsec_" secret.
func secretBytes(secret string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("webhook secret: want whsec_ followed by base64 (got %d characters that do not decode)", len(secret))
	}
	return b, nil
}

// Sign returns the webhook-signature header value for one message.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := secretBytes(secret)
	if err != nil {
		return "", err
	}
	return "v1," + sign(key, id, ts.Unix(), body), nil
}

func sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verification errors.
var (
	ErrNoSignature = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrStale       = errors.New("webhook: timestamp outside the tolerance (a replay, or a clock far off)")
	ErrSignature   = errors.New("webhook: no matching signature")
)

// Verify checks a received webhook as a receiver should: the timestamp
// within Tolerance of now (replay protection; receivers also remember the
// webhook-id to drop duplicates), then any of the v1 signatures, compared
// in constant time.
func Verify(secret string, h http.Header, body []byte, now time.Time) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: timestamp %q is not Unix seconds", tsText)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > Tolerance || d < -Tolerance {
		return ErrStale
	}
	key, err := secretBytes(secret)
	if err != nil {
		return err
	}
	want := []byte(sign(key, id, ts, body))
	for _, s := range strings.Fields(sigs) {
		v, sig, ok := strings.Cut(s, ",")
		if ok && v == "v1" && subtle.ConstantTimeCompare([]byte(sig), want) == 1 {
			return nil
		}
	}
	return ErrSignature
}
