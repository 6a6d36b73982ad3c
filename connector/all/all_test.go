package all_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln/connector"
	_ "github.com/kiln-cdp/kiln/connector/all"
	"github.com/kiln-cdp/kiln/connector/connectortest"
)

var want = []string{"activecampaign", "braze", "brevo", "customerio", "hubspot", "intercom", "iterable",
	"klaviyo", "mailchimp", "segment", "sendgrid", "shopify"}

func TestRegistered(t *testing.T) {
	if got := strings.Join(connector.IDs(), " "); got != strings.Join(want, " ") {
		t.Fatalf("registered %s, want %s", got, strings.Join(want, " "))
	}
	for _, id := range want {
		_, doc, _ := connector.Lookup(id)
		if doc.Name == "" || doc.Summary == "" || len(doc.Secrets) == 0 || len(doc.Identifiers) == 0 || doc.MaxBatch < 1 || doc.Rate.PerSecond <= 0 {
			t.Errorf("%s: incomplete doc %+v", id, doc)
		}
	}
}

// Every spec a connector claims exists in shared/specs, and the connectors
// docs/CONNECTORS.md has a section for each connector that says whether it
// is spec-validated.
func TestDocsAndSpecs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "CONNECTORS.md"))
	if err != nil {
		t.Fatal(err)
	}
	specs, specErr := connectortest.SpecsDir()
	for _, id := range want {
		_, d, _ := connector.Lookup(id)
		section := "## " + d.Name + " (`" + id + "`)"
		i := strings.Index(string(doc), section)
		if i < 0 {
			t.Errorf("docs/CONNECTORS.md has no section %q", section)
			continue
		}
		body := string(doc[i+len(section):])
		if j := strings.Index(body, "\n## "); j >= 0 {
			body = body[:j]
		}
		if d.Spec == "" && !strings.Contains(body, "Not spec-validated") {
			t.Errorf("%s: the section must say it is not spec-validated", id)
		}
		if d.Spec != "" && !strings.Contains(body, "Spec-validated") {
			t.Errorf("%s: the section must say it is spec-validated and against which file", id)
		}
		if d.Spec == "" || specErr != nil {
			continue
		}
		for i, f := range strings.Split(d.Spec, ", ") {
			if i > 0 && !strings.Contains(f, "/") {
				f = filepath.Join(filepath.Dir(strings.Split(d.Spec, ", ")[0]), f)
			}
			if _, err := os.Stat(filepath.Join(specs, f)); err != nil {
				t.Errorf("%s: spec %s: %v", id, f, err)
			}
			if !strings.Contains(body, filepath.Base(f)) {
				t.Errorf("%s: the section does not name its spec file %s", id, filepath.Base(f))
			}
		}
	}
	if specErr != nil {
		t.Logf("spec files not checked: %v", specErr)
	}
}
