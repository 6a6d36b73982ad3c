package ingest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/identity"
	"github.com/kiln-cdp/kiln/store"
)

type webhookBundle struct {
	sink *memSink
	auth *memAuth
	srv  *httptest.Server
	now  time.Time
}

// setupWebhooks runs all webhook handlers under /webhooks/{kind}/{source},
// as the server mounts them, with one source per kind.
func setupWebhooks(t *testing.T) *webhookBundle {
	t.Helper()
	b := &webhookBundle{sink: &memSink{}, auth: newMemAuth(), now: time.Date(2022, 1, 4, 12, 0, 0, 0, time.UTC)}
	b.auth.addSource(kiln.Source{ID: "src_shop", Name: "webshop", Kind: KindShopify, Secret: "hush", Store: "online"})
	b.auth.addSource(kiln.Source{ID: "src_woo", Name: "woo", Kind: KindWooCommerce, Secret: "woo-secret"})
	b.auth.addSource(kiln.Source{ID: "src_sg", Name: "sg", Kind: KindSendGrid})
	b.auth.addSource(kiln.Source{ID: "src_mc", Name: "mc", Kind: KindMailchimp, Secret: "s3cret"})
	cfg := WebhookConfig{Sink: b.sink, Auth: b.auth, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return b.now }}
	mux := http.NewServeMux()
	for _, kind := range WebhookKinds {
		h, err := NewWebhookHandler(kind, cfg)
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle("/webhooks/"+kind+"/{source}", h)
	}
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hmacB64(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (b *webhookBundle) send(t *testing.T, method, path string, body []byte, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func (b *webhookBundle) shopify(t *testing.T, topic string, body []byte) resp {
	t.Helper()
	return b.send(t, "POST", "/webhooks/shopify/webshop", body,
		"X-Shopify-Topic", topic, "X-Shopify-Hmac-Sha256", hmacB64("hush", body), "Content-Type", "application/json")
}

func TestShopifyOrderCreate(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	body := fixture(t, "shopify_orders_create.json")
	if r := b.shopify(t, "orders/create", body); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// Shopify retries deliveries: the retry has the same messageId.
	b.shopify(t, "orders/create", body)
	events, rejects := b.sink.snapshot()
	if len(rejects) != 0 || len(events) != 2 || len(b.sink.unique()) != 1 {
		t.Fatalf("events %d (unique %d), rejects %+v", len(events), len(b.sink.unique()), rejects)
	}
	e := events[0]
	if e.Type != kiln.Track || e.Name != kiln.OrderCompleted || e.SourceID != "src_shop" || e.MessageID != "shopify-order-820982911946154508-created" {
		t.Errorf("event %+v", e)
	}
	if want := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC); !e.Timestamp.Equal(want) || e.Timestamp.Location() != time.UTC {
		t.Errorf("timestamp %v, want %v", e.Timestamp, want)
	}
	if e.Anchor != "email:jon@example.com" || e.AnonymousID != "shopify:115310627314723954" {
		t.Errorf("anchor %q anonymousId %q", e.Anchor, e.AnonymousID)
	}
	if e.Store != "online" {
		t.Errorf("store %q, want the source's", e.Store)
	}
	p := e.Properties
	for k, want := range map[string]any{
		"order_id": "820982911946154508", "revenue": 388.0, "total": 403.0, "tax": 5.0, "shipping": 10.0, "discount": 20.0,
		"currency": "USD", "order_number": "1234", "checkout_id": "bd5a8aa1ecd019dd3520ff791ee3a24c",
		"gift": true, "gift_note": true, "gift_card": false, "ship_to_other": false, "gift_message": "Happy birthday, Ann!",
	} {
		if p[k] != want {
			t.Errorf("properties.%s = %#v, want %#v", k, p[k], want)
		}
	}
	prods := p["products"].([]any)
	if len(prods) != 2 {
		t.Fatalf("products %v", prods)
	}
	p0 := prods[0].(map[string]any)
	for k, want := range map[string]any{"sku": "IPOD2008PINK", "product_id": "632910392", "variant": "808950810", "name": "IPod Nano - 8GB", "category": "Cult Products", "price": 199.0, "quantity": 1.0} {
		if p0[k] != want {
			t.Errorf("products[0].%s = %#v, want %#v", k, p0[k], want)
		}
	}
	if e.Context["integration"].(map[string]any)["name"] != "shopify" {
		t.Errorf("context %v", e.Context)
	}
}

func TestShopifyCustomerConsentAndCheckout(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	if r := b.shopify(t, "customers/update", fixture(t, "shopify_customers_update.json")); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := b.shopify(t, "checkouts/create", fixture(t, "shopify_checkouts_create.json")); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	events, rejects := b.sink.snapshot()
	if len(events) != 2 || len(rejects) != 0 {
		t.Fatalf("events %+v rejects %+v", events, rejects)
	}
	c := events[0]
	if c.Type != kiln.Identify || c.Anchor != "email:bob@biller.com" || c.Traits["first_name"] != "Bob" || c.Traits["phone"] != "+1 (613) 555-0123" {
		t.Errorf("customer event %+v", c)
	}
	ids := Identifiers(&c)
	if len(ids) != 3 || ids[1] != (kiln.Identifier{Kind: kiln.Phone, Value: "+16135550123"}) || ids[2].Kind != kiln.AnonymousID {
		t.Errorf("identifiers %v", ids)
	}
	// email_marketing_consent (unsubscribed) overrides the legacy
	// accepts_marketing (true); SMS consent is its own channel.
	at := time.Date(2022, 1, 3, 14, 30, 0, 0, time.UTC)
	wantConsent(t, "customers/update", resolvedConsent(c), map[kiln.Channel]bool{kiln.ChannelEmail: false, kiln.ChannelSMS: true}, at)
	ch := events[1]
	if ch.Name != kiln.CheckoutStarted || ch.Properties["checkout_id"] != "123123123" || ch.MessageID != "shopify-checkout-123123123-created" {
		t.Errorf("checkout %+v", ch)
	}
	if !strings.Contains(ch.Properties["abandoned_checkout_url"].(string), "/recover?key=") || ch.Properties["gift_card"] != true || ch.Properties["revenue"] != 299.0 {
		t.Errorf("checkout properties %v", ch.Properties)
	}
}

func TestShopifyFailures(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	body := fixture(t, "shopify_orders_create.json")
	cases := []struct {
		name   string
		path   string
		body   []byte
		hdr    []string
		status int
		msg    string
	}{
		{"bad signature", "/webhooks/shopify/webshop", body, []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Hmac-Sha256", hmacB64("wrong", body)}, 401, "does not match the body"},
		{"no signature", "/webhooks/shopify/webshop", body, []string{"X-Shopify-Topic", "orders/create"}, 401, "not signed"},
		{"altered body", "/webhooks/shopify/webshop", append([]byte(" "), body...), []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Hmac-Sha256", hmacB64("hush", body)}, 401, "does not match"},
		{"unknown source", "/webhooks/shopify/nope", body, []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Hmac-Sha256", hmacB64("hush", body)}, 404, `no source "nope"`},
		{"wrong kind", "/webhooks/shopify/woo", body, []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Hmac-Sha256", hmacB64("woo-secret", body)}, 404, "is a woocommerce source, not shopify"},
		{"unparseable", "/webhooks/shopify/webshop", []byte("{\"id\": 1,\n\"line_items\": [}"), []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Hmac-Sha256", hmacB64("hush", []byte("{\"id\": 1,\n\"line_items\": [}"))}, 400, "invalid JSON at line 2, column 16"},
		{"wrong type", "/webhooks/shopify/webshop", []byte(`{"id":1,"line_items":{"a":1}}`), []string{"X-Shopify-Topic", "orders/create", "X-Shopify-Hmac-Sha256", hmacB64("hush", []byte(`{"id":1,"line_items":{"a":1}}`))}, 400, "field line_items"},
		{"no topic", "/webhooks/shopify/webshop", body, []string{"X-Shopify-Hmac-Sha256", hmacB64("hush", body)}, 400, "no X-Shopify-Topic"},
	}
	for _, c := range cases {
		r := b.send(t, "POST", c.path, c.body, c.hdr...)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, r.status, c.status, r.body)
			continue
		}
		if _, m := errorMessage(t, r); !strings.Contains(m, c.msg) {
			t.Errorf("%s: %q, want %q", c.name, m, c.msg)
		}
	}
	if ev, rj := b.sink.snapshot(); len(ev)+len(rj) != 0 {
		t.Errorf("failed requests stored %d events %d rejects", len(ev), len(rj))
	}
	// A parseable order without any customer identifier is acknowledged
	// (Shopify would retry for 48 h otherwise) and recorded as a reject.
	anon := []byte(`{"id": 5, "total_price": "1.00", "line_items": []}`)
	if r := b.shopify(t, "orders/create", anon); r.status != 200 {
		t.Fatalf("anonymous order: %d %s", r.status, r.body)
	}
	// A topic Kiln does not map is acknowledged and recorded too.
	if r := b.shopify(t, "products/create", []byte(`{"id": 9}`)); r.status != 200 {
		t.Fatalf("unmapped topic: %d %s", r.status, r.body)
	}
	_, rejects := b.sink.snapshot()
	if len(rejects) != 2 || !strings.Contains(rejects[0].Reason, "no customer identifier") || rejects[0].Origin != "shopify:orders/create" ||
		string(rejects[0].Payload) != string(anon) || rejects[0].SourceID != "src_shop" || !rejects[0].ReceivedAt.Equal(b.now) {
		t.Errorf("rejects %+v", rejects)
	}
	if !strings.Contains(rejects[1].Reason, "products/create is not mapped") {
		t.Errorf("unmapped topic reject %+v", rejects[1])
	}
}

func TestWooCommerce(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	body := fixture(t, "woocommerce_order_updated.json")
	send := func(body []byte, topic string) resp {
		return b.send(t, "POST", "/webhooks/woocommerce/woo", body, "X-WC-Webhook-Topic", topic, "X-WC-Webhook-Signature", hmacB64("woo-secret", body))
	}
	if r := send(body, "order.created"); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// The same order later completed: same messageId, one order.
	completed := []byte(strings.Replace(string(body), `"status": "processing"`, `"status": "completed"`, 1))
	send(completed, "order.updated")
	// Still pending: no purchase yet, no event.
	send([]byte(strings.Replace(string(body), `"status": "processing"`, `"status": "pending"`, 1)), "order.updated")
	events, rejects := b.sink.snapshot()
	if len(events) != 2 || len(b.sink.unique()) != 1 || len(rejects) != 0 {
		t.Fatalf("events %d unique %d rejects %v", len(events), len(b.sink.unique()), rejects)
	}
	e := events[0]
	if e.Name != kiln.OrderCompleted || e.MessageID != "woocommerce-order-727-completed" || e.Anchor != "email:john.doe@example.com" || e.AnonymousID != "" {
		t.Errorf("event %+v", e)
	}
	if !e.Timestamp.Equal(time.Date(2017, 3, 22, 19, 28, 8, 0, time.UTC)) {
		t.Errorf("timestamp %v", e.Timestamp)
	}
	if e.Properties["total"] != 29.35 || e.Properties["revenue"] != 18.0 || e.Properties["order_id"] != "727" {
		t.Errorf("properties %v", e.Properties)
	}
	prods := e.Properties["products"].([]any)
	if p := prods[1].(map[string]any); p["sku"] != "Bar3" || p["variant"] != "23" || p["price"] != 12.0 || p["quantity"] != 1.0 {
		t.Errorf("product %v", p)
	}
	if _, ok := prods[0].(map[string]any)["variant"]; ok {
		t.Errorf("variation_id 0 became a variant: %v", prods[0])
	}
	// Bad signature, and WooCommerce's unsigned URL check.
	if r := b.send(t, "POST", "/webhooks/woocommerce/woo", body, "X-WC-Webhook-Topic", "order.created", "X-WC-Webhook-Signature", hmacB64("nope", body)); r.status != 401 {
		t.Errorf("bad signature: %d", r.status)
	}
	if r := b.send(t, "POST", "/webhooks/woocommerce/woo", []byte("webhook_id=12"), "Content-Type", "application/x-www-form-urlencoded"); r.status != 200 {
		t.Errorf("ping: %d %s", r.status, r.body)
	}
	if r := send([]byte(`{"id": 1,`), "order.created"); r.status != 400 {
		t.Errorf("truncated: %d %s", r.status, r.body)
	}
}

// SendGrid's own published test vector for the Signed Event Webhook.
const (
	sgVectorKey = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
	sgVectorSig = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
	sgVectorTS  = "1588788367"
	sgVectorPay = `{"category":"example_payload","event":"test_event","message_id":"message_id"}`
)

func TestSendGridSignatureVector(t *testing.T) {
	at := time.Unix(1588788367, 0)
	if err := verifySendGrid(sgVectorKey, sgVectorSig, sgVectorTS, []byte(sgVectorPay), at, time.Hour); err != nil {
		t.Fatalf("vendor vector does not verify: %v", err)
	}
	if err := verifySendGrid(sgVectorKey, sgVectorSig, sgVectorTS, []byte(sgVectorPay+" "), at, time.Hour); kiln.ErrorCode(err) != kiln.EUnauthorized {
		t.Errorf("altered payload: %v", err)
	}
	if err := verifySendGrid(sgVectorKey, sgVectorSig, "1588788368", []byte(sgVectorPay), at, time.Hour); kiln.ErrorCode(err) != kiln.EUnauthorized {
		t.Errorf("altered timestamp: %v", err)
	}
	if err := verifySendGrid(sgVectorKey, sgVectorSig, sgVectorTS, []byte(sgVectorPay), at.Add(48*time.Hour), 24*time.Hour); err == nil || !strings.Contains(err.Error(), "replayed") {
		t.Errorf("old timestamp: %v", err)
	}
}

func TestSendGridEvents(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	body := fixture(t, "sendgrid_events.json")
	if r := b.send(t, "POST", "/webhooks/sendgrid/sg", body, "Content-Type", "application/json"); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	events, rejects := b.sink.snapshot()
	var names []string
	for _, e := range events {
		names = append(names, e.Name)
		if e.Anchor != "email:example@test.com" || !e.Timestamp.Equal(time.Unix(1513299569, 0)) || !strings.HasPrefix(e.MessageID, "sendgrid-") {
			t.Errorf("%s: anchor %q timestamp %v id %q", e.Name, e.Anchor, e.Timestamp, e.MessageID)
		}
	}
	want := "Email Opened,Email Link Clicked,Email Bounced,Email Bounced,Unsubscribed,Unsubscribed,Unsubscribed,Subscribed"
	if strings.Join(names, ",") != want {
		t.Errorf("events %s, want %s", strings.Join(names, ","), want)
	}
	if events[1].Properties["url"] != "http://www.sendgrid.com/" || events[2].Properties["bounce_classification"] != "Invalid Address" {
		t.Errorf("click/bounce properties %v %v", events[1].Properties, events[2].Properties)
	}
	for _, e := range events[4:7] {
		wantConsent(t, e.Properties["reason"].(string), resolvedConsent(e), map[kiln.Channel]bool{kiln.ChannelEmail: false}, time.Unix(1513299569, 0))
	}
	wantConsent(t, "group_resubscribe", resolvedConsent(events[7]), map[kiln.Channel]bool{kiln.ChannelEmail: true}, time.Unix(1513299569, 0))
	// In log order, the resubscription after the unsubscribes wins.
	for i := range events {
		events[i].Seq = int64(i + 1)
	}
	wantConsent(t, "whole batch", resolvedConsent(events...), map[kiln.Channel]bool{kiln.ChannelEmail: true}, time.Unix(1513299569, 0))
	if len(rejects) != 2 || rejects[0].Index != 10 || !strings.Contains(rejects[0].Reason, "no customer identifier") ||
		rejects[1].Index != 11 || !strings.Contains(rejects[1].Reason, `"mystery" is not mapped`) {
		t.Errorf("rejects %+v", rejects)
	}
	if r := b.send(t, "POST", "/webhooks/sendgrid/sg", []byte(`{"event":"open"}`)); r.status != 400 {
		t.Errorf("object instead of array: %d %s", r.status, r.body)
	}
}

func TestSendGridSignedRequests(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	b.auth.addSource(kiln.Source{ID: "src_sg2", Name: "sg-signed", Kind: KindSendGrid, Secret: base64.StdEncoding.EncodeToString(der)})
	body := []byte(`[{"email":"a@b.test","timestamp":1641297600,"event":"unsubscribe","sg_event_id":"e1"}]`)
	ts := strconv.FormatInt(b.now.Unix(), 10)
	digest := sha256.Sum256(append([]byte(ts), body...))
	sig, _ := ecdsa.SignASN1(rand.Reader, priv, digest[:])
	if r := b.send(t, "POST", "/webhooks/sendgrid/sg-signed", body, sendGridSigHeader, base64.StdEncoding.EncodeToString(sig), sendGridTSHeader, ts); r.status != 200 {
		t.Fatalf("signed: %d %s", r.status, r.body)
	}
	if r := b.send(t, "POST", "/webhooks/sendgrid/sg-signed", body); r.status != 401 {
		t.Errorf("unsigned: %d", r.status)
	}
	if r := b.send(t, "POST", "/webhooks/sendgrid/sg-signed", body, sendGridSigHeader, sgVectorSig, sendGridTSHeader, ts); r.status != 401 {
		t.Errorf("foreign signature: %d", r.status)
	}
	if n := len(b.sink.unique()); n != 1 {
		t.Errorf("%d events stored", n)
	}
}

func TestMailchimp(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	path := "/webhooks/mailchimp/mc?secret=s3cret"
	if r := b.send(t, "GET", path, nil); r.status != 200 {
		t.Errorf("validation GET: %d", r.status)
	}
	for _, f := range []string{"subscribe", "unsubscribe", "profile", "upemail", "cleaned", "campaign"} {
		if r := b.send(t, "POST", path, fixture(t, "mailchimp_"+f+".txt"), "Content-Type", "application/x-www-form-urlencoded"); r.status != 200 {
			t.Fatalf("%s: %d %s", f, r.status, r.body)
		}
	}
	// A retry of the same notice gets the same id.
	b.send(t, "POST", path, fixture(t, "mailchimp_unsubscribe.txt"))
	events, rejects := b.sink.snapshot()
	if len(rejects) != 0 || len(events) != 6 || len(b.sink.unique()) != 5 {
		t.Fatalf("events %d unique %d rejects %+v", len(events), len(b.sink.unique()), rejects)
	}
	sub, unsub, prof, up, clean := events[0], events[1], events[2], events[3], events[4]
	if sub.Type != kiln.Identify || sub.Anchor != "email:api@mailchimp.com" || sub.Traits["first_name"] != "Mailchimp" || !sub.Timestamp.Equal(time.Date(2009, 3, 26, 21, 35, 57, 0, time.UTC)) {
		t.Errorf("subscribe %+v", sub)
	}
	wantConsent(t, "subscribe", resolvedConsent(sub), map[kiln.Channel]bool{kiln.ChannelEmail: true}, sub.Timestamp)
	if unsub.Name != kiln.Unsubscribed || unsub.Anchor != "email:api+unsub@mailchimp.com" || unsub.Properties["campaign_id"] != "cb398d21d2" {
		t.Errorf("unsubscribe %+v", unsub)
	}
	wantConsent(t, "unsubscribe", resolvedConsent(unsub), map[kiln.Channel]bool{kiln.ChannelEmail: false}, unsub.Timestamp)
	if prof.Type != kiln.Identify || prof.Traits["last_name"] != "API" || len(resolvedConsent(prof)) != 0 {
		t.Errorf("profile %+v", prof)
	}
	ids := Identifiers(&up)
	if len(ids) != 2 || ids[0].Value != "api+new@mailchimp.com" || ids[1].Value != "api+old@mailchimp.com" {
		t.Errorf("upemail identifiers %v", ids)
	}
	if clean.Name != kiln.EmailBounced || clean.Properties["reason"] != "hard" {
		t.Errorf("cleaned %+v", clean)
	}
	if r := b.send(t, "POST", "/webhooks/mailchimp/mc", fixture(t, "mailchimp_subscribe.txt")); r.status != 401 {
		t.Errorf("no secret: %d", r.status)
	}
	if r := b.send(t, "POST", "/webhooks/mailchimp/mc?secret=guess", fixture(t, "mailchimp_subscribe.txt")); r.status != 401 {
		t.Errorf("wrong secret: %d", r.status)
	}
	if r := b.send(t, "POST", path, []byte("fired_at=2009-03-26+21%3A35%3A57")); r.status != 400 {
		t.Errorf("no type: %d", r.status)
	}
	if r := b.send(t, "POST", path, []byte("type=subscribe&fired_at=yesterday&data[email]=a@b.test")); r.status != 400 {
		t.Errorf("bad fired_at: %d", r.status)
	}
}

// resolvedConsent is the consent the identity resolver records for a
// profile holding these events: the proof that a webhook's events carry
// what the processor needs.
func resolvedConsent(events ...kiln.Event) []store.ConsentChange {
	_, cs := identity.Fold("p1", events)
	return cs
}

func wantConsent(t *testing.T, what string, got []store.ConsentChange, want map[kiln.Channel]bool, at time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: consent %+v, want %v", what, got, want)
		return
	}
	for _, c := range got {
		if g, ok := want[c.Channel]; !ok || g != c.Granted || !c.At.Equal(at) {
			t.Errorf("%s: consent %+v, want %v at %v", what, c, want, at)
		}
	}
}

// A signed webhook holding a value no store can hold is acknowledged and
// set aside in the rejects log, naming the field: refused, the vendor
// would retry it and in the end stop sending altogether.
func TestWebhookValuesNoStoreCanHoldAreSetAside(t *testing.T) {
	t.Parallel()
	b := setupWebhooks(t)
	order := string(fixture(t, "shopify_orders_create.json"))
	woo := string(fixture(t, "woocommerce_order_updated.json"))
	cases := []struct {
		name   string
		send   func() resp
		fields []string // one of these
		reason string
	}{
		{"shopify NaN total", func() resp {
			return b.shopify(t, "orders/create", []byte(strings.Replace(order, `"total_price": "403.00"`, `"total_price": "NaN"`, 1)))
		}, []string{"properties.total"}, "is NaN"},
		{"shopify date in 1600", func() resp {
			return b.shopify(t, "orders/create", []byte(strings.Replace(order, `"processed_at": "2021-12-31T19:00:00-05:00"`, `"processed_at": "1600-01-01T00:00:00Z"`, 1)))
		}, []string{"timestamp"}, "outside the years 1678-2261"},
		{"woocommerce Infinity total", func() resp {
			body := []byte(strings.Replace(woo, `"total": "29.35"`, `"total": "Infinity"`, 1))
			return b.send(t, "POST", "/webhooks/woocommerce/woo", body, "X-WC-Webhook-Topic", "order.created", "X-WC-Webhook-Signature", hmacB64("woo-secret", body))
		}, []string{"properties.total", "properties.revenue"}, "out of range"},
	}
	for _, c := range cases {
		if r := c.send(); r.status != 200 {
			t.Fatalf("%s: status %d %s", c.name, r.status, r.body)
		}
		events, rejects := b.sink.snapshot()
		if len(events) != 0 || len(rejects) == 0 {
			t.Fatalf("%s: %d events, %d rejects", c.name, len(events), len(rejects))
		}
		rj := rejects[len(rejects)-1]
		if !slices.Contains(c.fields, rj.Field) || !strings.Contains(rj.Reason, c.reason) || len(rj.Payload) == 0 || rj.SourceID == "" {
			t.Errorf("%s: reject %s: %s, want field %v and %q", c.name, rj.Field, rj.Reason, c.fields, c.reason)
		}
	}
	if r := b.shopify(t, "orders/create", []byte(order)); r.status != 200 {
		t.Fatalf("good order: %d %s", r.status, r.body)
	}
	if events, _ := b.sink.snapshot(); len(events) != 1 {
		t.Errorf("good order after poison ones: %d events, want 1", len(events))
	}
}
