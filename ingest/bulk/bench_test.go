package bulk

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-cdp/kiln"
)

type countSink struct{ events int }

func (s *countSink) Write(_ context.Context, ev []kiln.Event, _ []kiln.Reject) (int, error) {
	s.events += len(ev)
	return len(ev), nil
}

// BenchmarkImportCSV measures importing one-event-per-line CSV.
func BenchmarkImportCSV(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("customer,email,date,amount,store\n")
	const rows = 20000
	for i := range rows {
		sb.WriteString("c" + strconv.Itoa(i%3000) + ",user" + strconv.Itoa(i%3000) + "@example.com,2024-03-01T10:00:00Z," + strconv.Itoa(i%200) + ".50,store-" + strconv.Itoa(i%7) + "\n")
	}
	data := sb.String()
	m := Mapping{Event: kiln.VisitCompleted, Fields: map[string]string{
		"userId": "customer", "email": "email", "timestamp": "date", "properties.spend": "amount:number", "store": "store",
	}}
	sink := &countSink{}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Import(context.Background(), strings.NewReader(data), sink, Options{Mapping: m}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sink.events)/b.Elapsed().Seconds(), "events/s")
}
