package kiln

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// NewToken makes a random API key token for kind: "kiln_w_..." for write
// keys, "kiln_a_..." for admin keys, with 160 random bits.
func NewToken(kind KeyKind) string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic("kiln: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	p := "kiln_w_"
	if kind == AdminKey {
		p = "kiln_a_"
	}
	return p + hex.EncodeToString(b)
}

// HashToken is how tokens are stored. Tokens are long and random, so a
// plain SHA-256 is enough (no password-hashing cost on every request).
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// NewID returns a random identifier with the given prefix ("p_", "src_", ...).
func NewID(prefix string) string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic("kiln: no randomness: " + err.Error())
	}
	return prefix + hex.EncodeToString(b)
}
