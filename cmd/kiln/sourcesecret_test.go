package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/api"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

func TestSourceSecretsSealed(t *testing.T) { testSourceSecretsSealed(t, "") }

func TestSourceSecretsSealedOnPostgres(t *testing.T) { testSourceSecretsSealed(t, freshPostgres(t)) }

// testSourceSecretsSealed: a source created with a webhook secret is
// stored sealed; a row from before sealing (plaintext) is sealed when a
// server with the key starts; both still verify Shopify signatures
// through the server; without the key a secret is refused.
func testSourceSecretsSealed(t *testing.T, dsn string) {
	ctx := context.Background()
	t.Setenv(connector.KeyEnv, "")
	if _, err := api.CreateSource(ctx, nopKeys{}, "nokey", "shopify", "", "s3cret", time.Now()); err == nil || !strings.Contains(err.Error(), connector.KeyEnv) {
		t.Fatalf("a source secret without %s: %v, want an error naming it", connector.KeyEnv, err)
	}
	setSecretKey(t)
	m, _, _ := testMainOn(t, dsn)
	if _, err := api.CreateSource(ctx, m.Store, "shop", "shopify", "", "shpss_new", time.Now()); err != nil {
		t.Fatal(err)
	}
	// As an older Kiln stored it.
	if err := m.Store.CreateSource(ctx, kiln.Source{ID: "src_legacy", Name: "legacy", Kind: "shopify", Secret: "shpss_legacy", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cfg := m.Config
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := NewMain(io.Discard)
	m2.Config = cfg
	if err := m2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m2.Close() })

	for name, secret := range map[string]string{"shop": "shpss_new", "legacy": "shpss_legacy"} {
		s, err := m2.Store.GetSource(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if s.Secret != "" || len(s.SealedSecret) == 0 || bytes.Contains(s.SealedSecret, []byte(secret)) {
			t.Fatalf("source %s at rest: secret %q, sealed %q: want only the sealed form", name, s.Secret, s.SealedSecret)
		}
		if err := connector.OpenSource(mustKey(t), s); err != nil || s.Secret != secret {
			t.Fatalf("source %s opens to %q, %v", name, s.Secret, err)
		}
		if got := postShopify(t, m2.URL(), name, "not the secret"); got != http.StatusUnauthorized {
			t.Errorf("source %s, wrong signature: %d, want 401", name, got)
		}
		if got := postShopify(t, m2.URL(), name, secret); got != http.StatusOK {
			t.Errorf("source %s, signed with its secret: %d, want 200", name, got)
		}
	}
}

func mustKey(t *testing.T) *connector.Key {
	k, err := connector.KeyFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// postShopify posts the sample order webhook signed with secret.
func postShopify(t *testing.T, base, source, secret string) int {
	t.Helper()
	body, err := os.ReadFile("../../ingest/testdata/shopify_orders_create.json")
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest("POST", base+"/webhooks/shopify/"+source, bytes.NewReader(body))
	req.Header.Set("X-Shopify-Topic", "orders/create")
	req.Header.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// nopKeys is a store.Keys that must not be reached.
type nopKeys struct{ store.Keys }

// The unsubscribe links are served by the running server, without a key
// of the caller's: a link that was not made by it is refused with a page.
func TestUnsubscribeRoute(t *testing.T) {
	setSecretKey(t)
	m, _, _ := testMain(t)
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, m.URL()+"/unsubscribe/bm90LWEtdG9rZW4", strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "This link does not work") {
			t.Errorf("%s of a forged link: %d %s", method, resp.StatusCode, body)
		}
	}
}
