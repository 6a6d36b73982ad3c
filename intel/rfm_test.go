package intel

import (
	"strings"
	"testing"
)

func TestRFMQuintilesAndTies(t *testing.T) {
	// Ten customers with distinct values: two per quintile.
	var in []RFMInput
	for i := range 10 {
		in = append(in, RFMInput{Recency: float64(10 - i), Frequency: float64(i), Monetary: float64(100 * i)})
	}
	s, err := ScoreRFM(in, DefaultRFMConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i, sc := range s {
		want := 1 + i/2
		if sc.R != want || sc.F != want || sc.M != want {
			t.Errorf("customer %d: %+v, want all %d", i, sc, want)
		}
	}

	// Ties: 6 of 10 bought once, 2 twice, 1 three times, 1 ten times.
	freq := []float64{1, 1, 1, 1, 1, 1, 2, 2, 3, 10}
	in = in[:0]
	for _, f := range freq {
		in = append(in, RFMInput{Recency: 5, Frequency: f, Monetary: 1})
	}
	s, err = ScoreRFM(in, DefaultRFMConfig())
	if err != nil {
		t.Fatal(err)
	}
	// w (strictly worse) = 0, 6, 8, 9 → 1+⌊5w/10⌋ = 1, 4, 5, 5.
	want := []int{1, 1, 1, 1, 1, 1, 4, 4, 5, 5}
	for i, sc := range s {
		if sc.F != want[i] {
			t.Errorf("frequency %v scored %d, want %d", freq[i], sc.F, want[i])
		}
		// Everyone has the same recency and spend: all tied at the worst, score 1.
		if sc.R != 1 || sc.M != 1 {
			t.Errorf("tied recency/monetary scored R=%d M=%d, want 1", sc.R, sc.M)
		}
	}
}

func TestRFMSegments(t *testing.T) {
	cfg := DefaultRFMConfig()
	cases := map[[3]int]string{
		{5, 5, 5}: "Champions",
		{1, 5, 5}: "Can't Lose Them",
		{2, 4, 4}: "At Risk",
		{3, 4, 3}: "Loyal",
		{5, 1, 1}: "New Customers",
		{4, 1, 2}: "Promising",
		{4, 2, 3}: "Potential Loyalist",
		{2, 3, 2}: "Need Attention",
		{3, 2, 1}: "About to Sleep",
		{1, 1, 1}: "Lost",
		{2, 1, 5}: "Hibernating",
	}
	for k, want := range cases {
		if got := cfg.Segment(k[0], k[1], k[2]); got != want {
			t.Errorf("Segment%v = %q, want %q", k, got, want)
		}
	}
	// Every one of the 125 triples gets one of the configured names.
	names := map[string]bool{}
	for _, s := range cfg.Segments {
		names[s.Name] = true
	}
	seen := map[string]int{}
	for r := 1; r <= 5; r++ {
		for f := 1; f <= 5; f++ {
			for m := 1; m <= 5; m++ {
				n := cfg.Segment(r, f, m)
				if !names[n] {
					t.Fatalf("Segment(%d,%d,%d) = %q", r, f, m, n)
				}
				seen[n]++
			}
		}
	}
	if len(seen) != len(names) {
		t.Errorf("some segments are unreachable: %v", seen)
	}
	// Thresholds are tunable: a custom config changes the answer.
	custom := RFMConfig{Segments: []SegmentRule{{"Best", [2]int{5, 5}, [2]int{5, 5}, [2]int{5, 5}}, {"Rest", [2]int{1, 5}, [2]int{1, 5}, [2]int{1, 5}}}}
	if custom.Segment(5, 5, 5) != "Best" || custom.Segment(5, 5, 4) != "Rest" {
		t.Error("custom config not applied")
	}
	bad := RFMConfig{Segments: []SegmentRule{{"X", [2]int{0, 5}, [2]int{1, 5}, [2]int{1, 5}}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `"X": R range`) {
		t.Errorf("bad range error: %v", err)
	}
}

func TestRFMOnCDNOW(t *testing.T) {
	var in []RFMInput
	for _, s := range cdnowSpend(t) {
		s.Total = s.Monetary * float64(s.Frequency)
		in = append(in, RFMFromSummary(s))
	}
	s, err := ScoreRFM(in, DefaultRFMConfig())
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for i, sc := range s {
		count[sc.Segment]++
		// 1,411 of 2,357 customers never came back: F = 1 for exactly those.
		if (in[i].Frequency == 1) != (sc.F == 1) {
			t.Fatalf("customer %d frequency %v scored F=%d", i, in[i].Frequency, sc.F)
		}
	}
	t.Logf("CDNOW RFM groups: %v", count)
	if count["Champions"] == 0 || count["Lost"]+count["Hibernating"] == 0 {
		t.Errorf("implausible grouping: %v", count)
	}
}
