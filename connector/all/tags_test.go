package all_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-cdp/kiln/connector"
)

// tagVendor is a real HTTP server standing in for the tag endpoints of
// Mailchimp, ActiveCampaign and Intercom: listing finds nothing until a
// tag is created, and creating one takes a while (as a remote call does),
// which is when a second worker that looked too would create it again.
type tagVendor struct {
	*httptest.Server
	mu      sync.Mutex
	tags    []string
	creates atomic.Int32
	other   atomic.Int32
}

func newTagVendor(t *testing.T) *tagVendor {
	v := &tagVendor{}
	v.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		p := r.URL.Path
		switch {
		case r.Method == http.MethodPost && !strings.Contains(p, "/contacts/") && (strings.HasSuffix(p, "/segments") || strings.HasSuffix(p, "/tags")):
			time.Sleep(40 * time.Millisecond)
			n := v.creates.Add(1)
			v.mu.Lock()
			v.tags = append(v.tags, string(body))
			v.mu.Unlock()
			// Mailchimp {"id":n}; ActiveCampaign {"tag":{"id"}}; Intercom {"id"}
			if strings.Contains(p, "/api/3/") {
				fmt.Fprintf(w, `{"tag":{"id":"%d"}}`, n)
			} else if strings.Contains(p, "/lists/") {
				fmt.Fprintf(w, `{"id":%d}`, n)
			} else {
				fmt.Fprintf(w, `{"id":"%d"}`, n)
			}
		case r.Method == http.MethodGet && strings.HasSuffix(p, "/segments"):
			v.list(w, func(i int, name string) any { return map[string]any{"id": i, "name": name} }, "segments")
		case r.Method == http.MethodGet && strings.HasSuffix(p, "/tags"):
			v.list(w, func(i int, name string) any {
				return map[string]any{"id": fmt.Sprint(i), "tag": name, "tagType": "contact"}
			}, "tags")
		case strings.HasSuffix(p, "/contact/sync"):
			v.other.Add(1)
			fmt.Fprint(w, `{"contact":{"id":"c1"}}`)
		case strings.HasSuffix(p, "/contacts/search"):
			v.other.Add(1)
			fmt.Fprint(w, `{"data":[{"id":"c1","email":"a@example.com"}],"total_count":1}`)
		default:
			v.other.Add(1)
			fmt.Fprint(w, `{"id":"x","total_created":1,"members_added":[],"errors":[]}`)
		}
	}))
	t.Cleanup(v.Close)
	return v
}

// list answers a tag listing with what was created so far (the names
// taken from the creation bodies).
func (v *tagVendor) list(w http.ResponseWriter, item func(i int, name string) any, field string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []any
	for i, b := range v.tags {
		var m map[string]any
		json.Unmarshal([]byte(b), &m)
		name, _ := m["name"].(string)
		if t, ok := m["tag"].(map[string]any); ok {
			name, _ = t["tag"].(string)
		}
		out = append(out, item(i+1, name))
	}
	json.NewEncoder(w).Encode(map[string]any{field: out})
}

// Concurrent first deliveries to a new tag create it once: the lookup and
// creation run under a per-tag lock and the id is cached for the
// destination (the issue saw two Mailchimp and ActiveCampaign tags of one
// name created 39 ms apart, splitting the membership).
func TestTagCreatedOncePerDestination(t *testing.T) {
	for _, tc := range []struct {
		kind    string
		cfg     func(base string) string
		secrets connector.Secrets
	}{
		{"mailchimp", func(b string) string { return `{"audience_id":"aud","tags":{"vip":"VIP"},"base_url":"` + b + `"}` }, connector.Secrets{"api_key": "key"}},
		{"activecampaign", func(b string) string { return `{"tags":{"vip":"VIP"},"base_url":"` + b + `"}` }, connector.Secrets{"api_token": "tok"}},
		{"intercom", func(b string) string { return `{"tags":{"vip":"VIP"},"base_url":"` + b + `"}` }, connector.Secrets{"access_token": "tok"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			v := newTagVendor(t)
			cfg := tc.cfg(v.URL)
			cfg = cfg[:len(cfg)-1] + `,"requests_per_second":1000}`
			c, err := connector.New(tc.kind, json.RawMessage(cfg), tc.secrets, v.Client())
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ch := connector.Change{Op: connector.OpAdd, Segment: "vip", Member: connector.Member{ProfileID: fmt.Sprint("p", i), Email: fmt.Sprintf("m%d@example.com", i)}}
					c.Deliver(context.Background(), []connector.Change{ch})
				}()
			}
			wg.Wait()
			if n := v.creates.Load(); n != 1 {
				t.Fatalf("%s: the tag was created %d times by 16 concurrent deliveries, want once: %v", tc.kind, n, v.tags)
			}
			if v.other.Load() == 0 {
				t.Fatalf("%s: no membership call reached the vendor", tc.kind)
			}
		})
	}
}
