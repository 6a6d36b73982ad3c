package rule

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every example in the language reference's sections on sequences and
// event times, paths and line items (rule/doc.go) checks as written: a definition, a condition, a
// filter or a value.
func TestDocExamplesCheck(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	start := strings.Index(src, "// # Sequences and the time of an event")
	end := strings.Index(src, "// # JSON form")
	if start < 0 || end < start {
		t.Fatal("the reference lost its sequences, paths and line-items sections")
	}
	comment := regexp.MustCompile(`\s{2,}\S.*$|\s+\(.*\)$`) // the explanation after an example
	n := 0
	for _, line := range strings.Split(src[start:end], "\n") {
		ex, ok := strings.CutPrefix(line, "//\t")
		if !ok || strings.HasPrefix(ex, "#") {
			continue
		}
		ex = strings.TrimSpace(comment.ReplaceAllString(ex, ""))
		n++
		var tries []string
		if strings.HasPrefix(ex, "trait ") || strings.HasPrefix(ex, "segment ") {
			tries = []string{ex}
		} else {
			tries = []string{
				"segment s { " + ex + " }",
				"trait x = count of \"Order Completed\" where " + ex + " all time",
				"trait x = " + ex,
			}
		}
		var errs []string
		for _, tr := range tries {
			if strings.Contains(tr, "last_order_at") && !strings.HasPrefix(tr, "trait last_order_at") {
				tr = "trait last_order_at = last time of \"Order Completed\"\n" + tr // defined by an example before
			}
			for name, def := range rankPrelude {
				if strings.Contains(tr, name) {
					tr = def + "\n" + tr // the traits and populations the ranking examples read
				}
			}
			if _, _, err := Load(tr, nil); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			errs = nil
			break
		}
		if errs != nil {
			t.Errorf("doc example %q does not check: %s", ex, strings.Join(errs, "; "))
		}
	}
	if n < 20 {
		t.Errorf("only %d examples found", n)
	}
}

var rankPrelude = map[string]string{
	"spend_365d":  `trait spend_365d = sum(properties.revenue) of "Order Completed" in last 365 days`,
	"orders_365d": `trait orders_365d = count of "Order Completed" in last 365 days`,
	"visits_90d":  `trait visits_90d = count of "Visit Completed" in last 90 days`,
	"buyers_365d": `segment buyers_365d { count of "Order Completed" in last 365 days >= 1 }`,
	"guests_90d":  `segment guests_90d { count of "Visit Completed" in last 90 days >= 1 }`,
}
