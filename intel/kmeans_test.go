package intel

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// threeGroups makes customers from three well-separated kinds with a known
// group per customer: recent frequent big spenders on teaware, lapsed
// one-off small spenders, and middling plate buyers.
func threeGroups(n int, seed uint64) ([]ClusterInput, []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	jit := func(v float64) float64 { return v * (0.8 + 0.4*rng.Float64()) }
	var in []ClusterInput
	var truth []int
	for i := range n {
		g := i % 3
		var c ClusterInput
		switch g {
		case 0:
			c = ClusterInput{Recency: jit(3), Frequency: jit(25), Monetary: jit(2000), Categories: []float64{0.8, 0.2}}
		case 1:
			c = ClusterInput{Recency: jit(300), Frequency: 1, Monetary: jit(20), Categories: []float64{0.3, 0.7}}
		case 2:
			c = ClusterInput{Recency: jit(40), Frequency: jit(5), Monetary: jit(200), Categories: []float64{0.1, 0.9}}
		}
		in = append(in, c)
		truth = append(truth, g)
	}
	return in, truth
}

func TestClusterFindsGroupsAndDescribesThem(t *testing.T) {
	in, truth := threeGroups(3000, 7)
	res, err := ClusterCustomers(in, ClusterOptions{Seed: 1, CategoryNames: []string{"teaware", "plates"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Silhouettes {
		t.Logf("k=%d silhouette %.3f", s.K, s.Silhouette)
	}
	for i, c := range res.Clusters {
		t.Logf("cluster %d: %d (%.0f%%) %q typical %+v", i, c.Size, 100*c.Share, c.Description, c.Typical)
	}
	if res.K != 3 {
		t.Fatalf("chose k=%d, want 3", res.K)
	}
	// Each true group maps to one cluster.
	m := map[int]int{}
	for i, l := range res.Assignments {
		if prev, ok := m[truth[i]]; ok && prev != l {
			t.Fatalf("group %d split over clusters %d and %d", truth[i], prev, l)
		}
		m[truth[i]] = l
	}
	desc := func(g int) string { return res.Clusters[m[g]].Description }
	for g, words := range map[int][]string{0: {"recent", "frequent", "high spend", "teaware"}, 1: {"lapsed", "infrequent", "low spend"}} {
		for _, w := range words {
			if !strings.Contains(desc(g), w) {
				t.Errorf("group %d described as %q, missing %q", g, desc(g), w)
			}
		}
	}
	if strings.Contains(desc(1), "teaware") {
		t.Errorf("lapsed group described as %q", desc(1))
	}
	within(t, "typical frequency of the best group", res.Clusters[m[0]].Typical.Frequency, 25, 0.1)
}

func TestClusterDeterministic(t *testing.T) {
	in, _ := threeGroups(900, 8)
	// Without category shares, and a sample smaller than the base.
	for i := range in {
		in[i].Categories = nil
	}
	o := ClusterOptions{Seed: 42, SampleSize: 500, SilhouetteSize: 300}
	a, err := ClusterCustomers(in, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ClusterCustomers(in, o)
	if err != nil {
		t.Fatal(err)
	}
	if a.K != b.K || !slices.Equal(a.Assignments, b.Assignments) || a.Inertia != b.Inertia {
		t.Error("same seed, different clustering")
	}
}

func TestClusterRejectsBadInput(t *testing.T) {
	good := []ClusterInput{{1, 1, 1, nil}, {2, 2, 2, nil}, {3, 3, 3, nil}}
	for name, in := range map[string][]ClusterInput{
		"negative":   {{1, 1, 1, nil}, {-2, 2, 2, nil}, {3, 3, 3, nil}},
		"categories": {{1, 1, 1, []float64{0.5}}, {2, 2, 2, nil}, {3, 3, 3, []float64{0.5}}},
		"share":      {{1, 1, 1, []float64{1.5}}, {2, 2, 2, []float64{0}}, {3, 3, 3, []float64{0}}},
		"too few":    good[:2],
	} {
		if _, err := ClusterCustomers(in, ClusterOptions{}); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestClusterTinySample(t *testing.T) {
	in, _ := threeGroups(300, 9)
	res, err := ClusterCustomers(in, ClusterOptions{SampleSize: 5, SilhouetteSize: 5, KMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.K > 4 || len(res.Assignments) != 300 {
		t.Errorf("k=%d from a sample of 5, %d assignments", res.K, len(res.Assignments))
	}
	if _, err := ClusterCustomers(in, ClusterOptions{SampleSize: 2}); err == nil {
		t.Error("a 2-customer sample cannot choose k >= 2")
	}
}
