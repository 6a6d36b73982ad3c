package connector

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/kiln-cdp/kiln"
)

// KeyEnv is the environment variable holding the server's secret key: 32
// random bytes, base64 (`openssl rand -base64 32`).
const KeyEnv = "KILN_SECRET_KEY"

// Key is an AES-256 key for sealing connector secrets.
type Key struct {
	aead cipher.AEAD
	id   [4]byte // first bytes of SHA-256(key): tells a wrong key from tampering
}

// Sealing errors. Open returns them wrapped with detail.
var (
	ErrWrongKey = errors.New("sealed with a different key")
	ErrTampered = errors.New("sealed data is corrupt or was modified")
)

const (
	sealVersion = 1
	headerLen   = 1 + 4 // version, key id
)

// ParseKey decodes a base64 (standard or URL alphabet, padded or not)
// 32-byte key.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("secret key: not base64: %v", err)
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("secret key: %d bytes after base64 decoding, want 32 (generate one with `openssl rand -base64 32`)", len(raw))
	}
	return NewKey(raw)
}

// NewKey makes a Key from 32 raw bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("secret key: %d bytes, want 32", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &Key{aead: aead}
	sum := sha256.Sum256(raw)
	copy(k.id[:], sum[:4])
	return k, nil
}

// KeyFromEnv reads the key from KILN_SECRET_KEY.
func KeyFromEnv() (*Key, error) {
	v := os.Getenv(KeyEnv)
	if v == "" {
		return nil, fmt.Errorf("%s is not set: connector secrets cannot be stored without it (generate one with `openssl rand -base64 32`)", KeyEnv)
	}
	k, err := ParseKey(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyEnv, err)
	}
	return k, nil
}

// Seal encrypts and authenticates plaintext. associated is authenticated but
// not stored (pass the destination's id so a sealed blob cannot be moved to
// another destination); Open must be given the same. The result is
// version (1 byte) | key id (4) | nonce (12) | ciphertext+tag.
func Seal(k *Key, plaintext, associated []byte) ([]byte, error) {
	if k == nil {
		return nil, errors.New("seal: no key")
	}
	out := make([]byte, headerLen+k.aead.NonceSize(), headerLen+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	copy(out[1:headerLen], k.id[:])
	nonce := out[headerLen:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: reading random nonce: %w", err)
	}
	// The header is authenticated too, so a swapped key id is tampering.
	return k.aead.Seal(out, nonce, plaintext, aad(out[:headerLen], associated)), nil
}

// Open reverses Seal. It returns an error wrapping ErrWrongKey when the
// blob was sealed under another key, and ErrTampered when it fails
// authentication (modified data, or a different associated value).
func Open(k *Key, sealed, associated []byte) ([]byte, error) {
	if k == nil {
		return nil, errors.New("open: no key")
	}
	ns := k.aead.NonceSize()
	if len(sealed) < headerLen+ns+k.aead.Overhead() {
		return nil, fmt.Errorf("open: %w: %d bytes is too short", ErrTampered, len(sealed))
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("open: %w: unknown format version %d", ErrTampered, sealed[0])
	}
	if subtle.ConstantTimeCompare(sealed[1:headerLen], k.id[:]) != 1 {
		return nil, fmt.Errorf("open: %w (key id %x, the configured %s has id %x)", ErrWrongKey, sealed[1:headerLen], KeyEnv, k.id)
	}
	nonce := sealed[headerLen : headerLen+ns]
	pt, err := k.aead.Open(nil, nonce, sealed[headerLen+ns:], aad(sealed[:headerLen], associated))
	if err != nil {
		return nil, fmt.Errorf("open: %w", ErrTampered)
	}
	return pt, nil
}

func aad(header, associated []byte) []byte {
	b := make([]byte, 0, len(header)+len(associated))
	return append(append(b, header...), associated...)
}

// SealSecrets seals a destination's secrets as one blob.
func SealSecrets(k *Key, s Secrets, associated []byte) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return Seal(k, b, associated)
}

// OpenSecrets reverses SealSecrets.
func OpenSecrets(k *Key, sealed, associated []byte) (Secrets, error) {
	b, err := Open(k, sealed, associated)
	if err != nil {
		return nil, err
	}
	var s Secrets
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("open: secrets are not a JSON object: %w", err)
	}
	return s, nil
}

// NewSealed makes a connector from a stored destination: its registry id,
// config and secrets sealed with SealSecrets under destinationID.
func NewSealed(k *Key, id string, cfg json.RawMessage, sealed []byte, destinationID string, httpClient *http.Client) (Connector, error) {
	secrets, err := OpenSecrets(k, sealed, []byte(destinationID))
	if err != nil {
		return nil, fmt.Errorf("destination %s: secrets: %w", destinationID, err)
	}
	return New(id, cfg, secrets, httpClient)
}

// sourceAssociated binds a sealed source secret to its source, so it
// cannot be moved to another source (or passed off as a destination's).
func sourceAssociated(sourceID string) []byte { return []byte("source:" + sourceID) }

// SealSource seals a source's webhook secret for storage: SealedSecret is
// set and Secret emptied. A source without a secret is left as it is.
func SealSource(k *Key, s *kiln.Source) error {
	if s.Secret == "" {
		return nil
	}
	if k == nil {
		return kiln.Errorf(kiln.EInvalid, "source %s has a webhook secret but %s is not set to encrypt it with (generate one with `openssl rand -base64 32` and give the server the same)", s.Name, KeyEnv)
	}
	sealed, err := Seal(k, []byte(s.Secret), sourceAssociated(s.ID))
	if err != nil {
		return fmt.Errorf("sealing the secret of source %s: %w", s.Name, err)
	}
	s.SealedSecret, s.Secret = sealed, ""
	return nil
}

// OpenSource fills in a stored source's Secret from its SealedSecret.
func OpenSource(k *Key, s *kiln.Source) error {
	if len(s.SealedSecret) == 0 {
		return nil
	}
	if k == nil {
		return fmt.Errorf("source %s: its webhook secret is sealed and %s is not set", s.Name, KeyEnv)
	}
	b, err := Open(k, s.SealedSecret, sourceAssociated(s.ID))
	if err != nil {
		return fmt.Errorf("source %s: webhook secret: %w", s.Name, err)
	}
	s.Secret = string(b)
	return nil
}
