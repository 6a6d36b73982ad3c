package connectortest

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func loadOrSkip(t testing.TB, rel string, opt SpecOptions) *OpenAPI {
	t.Helper()
	v, err := LoadSpec(rel, opt)
	if errors.Is(err, ErrNoSpecs) {
		t.Skipf("spec validation skipped: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func klaviyoRequest(body string, auth bool) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/api/lists/Y6nRLr/relationships/profiles", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/vnd.api+json")
	r.Header.Set("revision", "2026-07-15")
	if auth {
		r.Header.Set("Authorization", "Klaviyo-API-Key pk_x")
	}
	return r
}

func TestOpenAPIValidator(t *testing.T) {
	v := loadOrSkip(t, "klaviyo/openapi/stable.json", SpecOptions{})
	good := `{"data":[{"type":"profile","id":"01GDDKASAP8TKDDA2GRZDSVP4H"}]}`
	if err := v.Validate(klaviyoRequest(good, true), []byte(good)); err != nil {
		t.Fatalf("a well-formed add was rejected: %v", err)
	}
	if err := v.Validate(klaviyoRequest(good, false), []byte(good)); err == nil || !strings.Contains(err.Error(), "Authorization") {
		t.Errorf("no credentials: got %v", err)
	}
	bad := `{"data":[{"type":"profile","id":42}]}`
	if err := v.Validate(klaviyoRequest(bad, true), []byte(bad)); err == nil {
		t.Error("a numeric profile id was accepted")
	}
	r, _ := http.NewRequest(http.MethodPut, "http://x/api/lists/Y6nRLr/relationships/profiles", nil)
	if err := v.Validate(r, nil); err == nil || !strings.Contains(err.Error(), "no such operation") {
		t.Errorf("wrong method: got %v", err)
	}
}

// Multi picks the file that has the operation: SendGrid's DeleteContact
// exists in two files with different paths.
func TestMulti(t *testing.T) {
	contacts := loadOrSkip(t, "sendgrid/spec/json/tsg_mc_contacts_v3.json", SpecOptions{})
	lists := loadOrSkip(t, "sendgrid/spec/json/tsg_mc_lists_v3.json", SpecOptions{})
	m := Multi{contacts, lists}
	r, _ := http.NewRequest(http.MethodDelete, "http://x/v3/marketing/lists/ca7a3796-e8a8-4029-9ccb-df8937940562/contacts?contact_ids=a,b", nil)
	r.Header.Set("Authorization", "Bearer SG.x")
	if err := m.Validate(r, nil); err != nil {
		t.Fatal(err)
	}
	r, _ = http.NewRequest(http.MethodDelete, "http://x/v3/marketing/lists/ca7a3796-e8a8-4029-9ccb-df8937940562/contacts", nil)
	r.Header.Set("Authorization", "Bearer SG.x")
	if err := m.Validate(r, nil); err == nil {
		t.Error("a removal without contact_ids was accepted")
	}
}

func TestIsSwagger2(t *testing.T) {
	cases := map[string]bool{
		`{"info":{},"paths":{},"swagger":"2.0"}`: true,
		`{"openapi":"3.0.1","paths":{}}`:         false,
		"info:\n  title: x\nswagger: \"2.0\"\n":  true,
		"openapi: 3.0.3\n":                       false,
	}
	for in, want := range cases {
		if got := isSwagger2([]byte(in)); got != want {
			t.Errorf("%q: got %v", in, got)
		}
	}
}

func TestSpecsDirEnv(t *testing.T) {
	t.Setenv("KILN_SPECS", t.TempDir()+"/missing")
	if _, err := SpecsDir(); !errors.Is(err, ErrNoSpecs) {
		t.Errorf("missing KILN_SPECS dir: %v", err)
	}
	d := t.TempDir()
	t.Setenv("KILN_SPECS", d)
	if got, err := SpecsDir(); err != nil || got != d {
		t.Errorf("got %q, %v", got, err)
	}
}

// BenchmarkValidateKlaviyo measures what spec validation adds per request
// (the 3 MB Klaviyo document, loaded once).
func BenchmarkValidateKlaviyo(b *testing.B) {
	v := loadOrSkip(b, "klaviyo/openapi/stable.json", SpecOptions{})
	body := `{"data":[` + strings.Repeat(`{"type":"profile","id":"01GDDKASAP8TKDDA2GRZDSVP4H"},`, 99) +
		`{"type":"profile","id":"01GDDKASAP8TKDDA2GRZDSVP4H"}]}`
	for b.Loop() {
		if err := v.Validate(klaviyoRequest(body, true), []byte(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// The fakes are held to the spec too: an answer missing what the vendor
// documents is reported.
func TestValidateResponse(t *testing.T) {
	v := loadOrSkip(t, "klaviyo/openapi/stable.json", SpecOptions{})
	body := `{"data":{"type":"profile","attributes":{"email":"a@example.com"}}}`
	r, _ := http.NewRequest(http.MethodPost, "http://x/api/profile-import", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/vnd.api+json")
	r.Header.Set("Authorization", "Klaviyo-API-Key pk_x")
	r.Header.Set("revision", "2026-07-15")
	h := http.Header{"Content-Type": {"application/vnd.api+json"}}
	good := `{"data":{"type":"profile","id":"01K","attributes":{"email":"a@example.com"},"links":{"self":"https://a.klaviyo.com/api/profiles/01K/"}}}`
	if err := v.ValidateResponse(r, []byte(body), 201, h, []byte(good)); err != nil {
		t.Fatalf("a documented answer was rejected: %v", err)
	}
	bad := `{"data":{"type":"profile","id":"01K","attributes":{"email":"a@example.com"}}}`
	if err := v.ValidateResponse(r, []byte(body), 201, h, []byte(bad)); err == nil || !strings.Contains(err.Error(), "links") {
		t.Errorf("an answer without links: %v", err)
	}
}
