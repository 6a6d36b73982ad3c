package intel

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// ClusterInput is one customer for clustering: RFM values (all >= 0; they
// are log-transformed with log1p) and optional category spend shares
// (each in [0, 1], the same number for every customer, or none).
type ClusterInput struct {
	Recency, Frequency, Monetary float64
	Categories                   []float64
}

// ClusterOptions tunes ClusterCustomers. The zero value is the default.
type ClusterOptions struct {
	KMin, KMax int    // range of k to try; default 2..8
	Seed       uint64 // same seed and input, same clustering
	// SampleSize is the number of customers (a seeded random sample) on
	// which each k is clustered to choose k; default 20,000.
	SampleSize int
	// SilhouetteSize is how many of those the silhouette is computed on
	// (it is quadratic); default 2,000.
	SilhouetteSize int
	// CategoryNames name the category shares in descriptions ("teaware").
	CategoryNames []string
	// MaxIterations bounds Lloyd's iterations; default 100.
	MaxIterations int
}

func (o ClusterOptions) withDefaults(n int) ClusterOptions {
	if o.KMin < 2 {
		o.KMin = 2
	}
	if o.KMax == 0 {
		o.KMax = 8
	}
	o.KMax = min(o.KMax, n-1)
	if o.SampleSize <= 0 {
		o.SampleSize = 20000
	}
	if o.SilhouetteSize <= 0 {
		o.SilhouetteSize = 2000
	}
	if o.MaxIterations <= 0 {
		o.MaxIterations = 100
	}
	return o
}

// KSilhouette is the mean silhouette of the clustering with K clusters on
// the silhouette sample; higher is better separated, 1 at most.
type KSilhouette struct {
	K          int
	Silhouette float64
}

// Cluster describes one cluster.
type Cluster struct {
	Size  int
	Share float64 // of all customers
	// Centroid is in the standardised feature space: each coordinate is how
	// many population standard deviations the cluster mean lies from the
	// population mean (log1p scale for R, F, M).
	Centroid []float64
	// Typical is the centroid back in original units (expm1 of the mean
	// log1p value: a geometric-mean-like typical customer).
	Typical RFMInput
	// Categories is the mean category share (nil without categories).
	Categories []float64
	// Description is the centroid in plain words relative to the
	// population, e.g. "recent, frequent, high spend, teaware".
	Description string
}

// Clustering is the result of ClusterCustomers.
type Clustering struct {
	K           int
	Features    []string      // names of the standardised features
	Silhouettes []KSilhouette // one per k tried
	Assignments []int         // cluster index of each input, in input order
	Clusters    []Cluster     // largest first
	Inertia     float64       // within-cluster sum of squares on the full data
}

// ClusterCustomers runs k-means on standardised log-RFM (+ category share)
// features. k is the value in [KMin, KMax] with the highest mean silhouette,
// judged on a seeded sample: each k is clustered on SampleSize customers
// (k-means++ initialisation, best of 3 seeded restarts) and scored by the
// silhouette of SilhouetteSize of them. The chosen k's sample centroids
// then seed Lloyd's algorithm on all customers (assignments in parallel).
// Cost is O(n·k·d·iterations) plus a fixed sample cost, so a million
// customers take seconds.
func ClusterCustomers(in []ClusterInput, o ClusterOptions) (*Clustering, error) {
	n := len(in)
	if n < 3 {
		return nil, fmt.Errorf("cluster: need at least 3 customers, got %d", n)
	}
	o = o.withDefaults(n)
	if o.KMin > o.KMax {
		return nil, fmt.Errorf("cluster: k range [%d, %d] is empty for %d customers", o.KMin, o.KMax, n)
	}
	nc := len(in[0].Categories)
	if len(o.CategoryNames) != 0 && len(o.CategoryNames) != nc {
		return nil, fmt.Errorf("cluster: %d category names for %d category shares", len(o.CategoryNames), nc)
	}
	d := 3 + nc
	x := make([]float64, n*d)
	for i, c := range in {
		if len(c.Categories) != nc {
			return nil, fmt.Errorf("cluster: customer %d has %d category shares, customer 0 has %d", i, len(c.Categories), nc)
		}
		row := x[i*d : (i+1)*d]
		for j, v := range [3]float64{c.Recency, c.Frequency, c.Monetary} {
			if !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("cluster: customer %d: %s = %v must be a finite number >= 0", i, [3]string{"recency", "frequency", "monetary"}[j], v)
			}
			row[j] = math.Log1p(v)
		}
		for j, v := range c.Categories {
			if !(v >= 0 && v <= 1) {
				return nil, fmt.Errorf("cluster: customer %d: category share %d = %v must be in [0, 1]", i, j, v)
			}
			row[3+j] = v
		}
	}
	mean, sd := standardise(x, n, d)

	res := &Clustering{Features: []string{"recency", "frequency", "monetary"}}
	for j := range nc {
		res.Features = append(res.Features, categoryName(o.CategoryNames, j))
	}

	rng := rand.New(rand.NewPCG(o.Seed, 0x6b6d65616e73))
	sample := sampleRows(x, n, d, min(o.SampleSize, n), rng)
	ns := len(sample) / d
	if o.KMax >= ns {
		o.KMax = ns - 1
		if o.KMin > o.KMax {
			return nil, fmt.Errorf("cluster: sample of %d customers is too small for k >= %d (raise SampleSize)", ns, o.KMin)
		}
	}
	silN := min(o.SilhouetteSize, ns)
	bestK, bestS := 0, math.Inf(-1)
	var bestCent []float64
	for k := o.KMin; k <= o.KMax; k++ {
		var cent []float64
		var labels []int
		inertia := math.Inf(1)
		for range 3 {
			c0 := kmeansPP(sample, ns, d, k, rng)
			c, l, in := lloyd(sample, ns, d, c0, o.MaxIterations)
			if in < inertia {
				cent, labels, inertia = c, l, in
			}
		}
		s := silhouette(sample[:silN*d], labels[:silN], silN, d, k)
		res.Silhouettes = append(res.Silhouettes, KSilhouette{k, s})
		if s > bestS {
			bestK, bestS, bestCent = k, s, cent
		}
	}
	cent, labels, inertia := lloyd(x, n, d, bestCent, o.MaxIterations)
	res.K, res.Inertia = bestK, inertia

	// Largest cluster first, so labels are stable and readable.
	sizes := make([]int, bestK)
	for _, l := range labels {
		sizes[l]++
	}
	order := make([]int, bestK)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(sizes[b], sizes[a]) })
	rank := make([]int, bestK)
	for r, c := range order {
		rank[c] = r
	}
	res.Assignments = labels
	for i, l := range labels {
		labels[i] = rank[l]
	}
	for _, c := range order {
		z := slices.Clone(cent[c*d : (c+1)*d])
		cl := Cluster{Size: sizes[c], Share: float64(sizes[c]) / float64(n), Centroid: z}
		orig := make([]float64, d)
		for j := range d {
			orig[j] = mean[j] + z[j]*sd[j]
		}
		cl.Typical = RFMInput{Recency: math.Expm1(orig[0]), Frequency: math.Expm1(orig[1]), Monetary: math.Expm1(orig[2])}
		if nc > 0 {
			cl.Categories = orig[3:]
		}
		cl.Description = describe(z, o.CategoryNames)
		res.Clusters = append(res.Clusters, cl)
	}
	return res, nil
}

func categoryName(names []string, j int) string {
	if j < len(names) && names[j] != "" {
		return names[j]
	}
	return fmt.Sprintf("category %d", j+1)
}

// describe puts a standardised centroid into words. A feature is mentioned
// when the cluster mean is at least half a population standard deviation
// from the population mean; the strongest over-represented category is
// named.
func describe(z []float64, catNames []string) string {
	var w []string
	pick := func(v float64, low, high, veryLow, veryHigh string) {
		switch {
		case v <= -1.5:
			w = append(w, veryLow)
		case v <= -0.5:
			w = append(w, low)
		case v >= 1.5:
			w = append(w, veryHigh)
		case v >= 0.5:
			w = append(w, high)
		}
	}
	// Recency is time since the last purchase: low is good.
	pick(z[0], "recent", "lapsed", "very recent", "long lapsed")
	pick(z[1], "infrequent", "frequent", "very infrequent", "very frequent")
	pick(z[2], "low spend", "high spend", "very low spend", "very high spend")
	best, bj := 0.5, -1
	for j, v := range z[3:] {
		if v >= best {
			best, bj = v, j
		}
	}
	if bj >= 0 {
		w = append(w, categoryName(catNames, bj))
	}
	if len(w) == 0 {
		return "typical customers"
	}
	return strings.Join(w, ", ")
}

// standardise turns each column into z-scores in place and returns the
// original means and standard deviations. A constant column becomes 0
// (sd reported as 1) so it plays no part in distances.
func standardise(x []float64, n, d int) (mean, sd []float64) {
	mean, sd = make([]float64, d), make([]float64, d)
	for i := range n {
		for j := range d {
			mean[j] += x[i*d+j]
		}
	}
	for j := range d {
		mean[j] /= float64(n)
	}
	for i := range n {
		for j := range d {
			v := x[i*d+j] - mean[j]
			sd[j] += v * v
		}
	}
	for j := range d {
		sd[j] = math.Sqrt(sd[j] / float64(n))
		if sd[j] < 1e-12 {
			sd[j] = 1
		}
	}
	for i := range n {
		for j := range d {
			x[i*d+j] = (x[i*d+j] - mean[j]) / sd[j]
		}
	}
	return mean, sd
}

// sampleRows returns m distinct rows chosen by a seeded partial
// Fisher-Yates shuffle (all rows when m == n, in shuffled order, so any
// prefix is itself a uniform sample).
func sampleRows(x []float64, n, d, m int, rng *rand.Rand) []float64 {
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	out := make([]float64, 0, m*d)
	for i := range m {
		j := i + rng.IntN(n-i)
		idx[i], idx[j] = idx[j], idx[i]
		out = append(out, x[int(idx[i])*d:int(idx[i]+1)*d]...)
	}
	return out
}

func dist2(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		v := a[i] - b[i]
		s += v * v
	}
	return s
}

// kmeansPP picks k initial centroids by k-means++ (Arthur and Vassilvitskii
// 2007): each next centre is drawn with probability proportional to the
// squared distance to the nearest centre chosen so far.
func kmeansPP(x []float64, n, d, k int, rng *rand.Rand) []float64 {
	cent := make([]float64, 0, k*d)
	first := rng.IntN(n)
	cent = append(cent, x[first*d:(first+1)*d]...)
	dmin := make([]float64, n)
	for i := range n {
		dmin[i] = dist2(x[i*d:(i+1)*d], cent[:d])
	}
	for c := 1; c < k; c++ {
		total := 0.0
		for _, v := range dmin {
			total += v
		}
		pick := n - 1
		if total > 0 {
			u := rng.Float64() * total
			for i, v := range dmin {
				u -= v
				if u <= 0 {
					pick = i
					break
				}
			}
		} else {
			pick = rng.IntN(n) // all points coincide with centres
		}
		cent = append(cent, x[pick*d:(pick+1)*d]...)
		nc := cent[c*d : (c+1)*d]
		for i := range n {
			if v := dist2(x[i*d:(i+1)*d], nc); v < dmin[i] {
				dmin[i] = v
			}
		}
	}
	return cent
}

// lloyd runs Lloyd's algorithm from the given centroids until no point
// changes cluster or maxIter; the assignment step runs on all CPUs. An
// emptied cluster is re-seeded with the point farthest from its centre.
func lloyd(x []float64, n, d int, init []float64, maxIter int) (cent []float64, labels []int, inertia float64) {
	k := len(init) / d
	cent = slices.Clone(init)
	labels = make([]int, n)
	for i := range labels {
		labels[i] = -1
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), n/20000))
	type part struct {
		sum     []float64
		cnt     []int
		changed int
		inertia float64
		far     int
		farD    float64
	}
	parts := make([]part, workers)
	chunk := (n + workers - 1) / workers
	for it := 0; it < maxIter; it++ {
		var wg sync.WaitGroup
		for w := range workers {
			lo, hi := w*chunk, min((w+1)*chunk, n)
			wg.Add(1)
			go func(p *part) {
				defer wg.Done()
				*p = part{sum: make([]float64, k*d), cnt: make([]int, k), far: -1}
				for i := lo; i < hi; i++ {
					row := x[i*d : (i+1)*d]
					best, bd := 0, math.Inf(1)
					for c := range k {
						if v := dist2(row, cent[c*d:(c+1)*d]); v < bd {
							best, bd = c, v
						}
					}
					if labels[i] != best {
						labels[i] = best
						p.changed++
					}
					p.cnt[best]++
					p.inertia += bd
					if bd > p.farD {
						p.far, p.farD = i, bd
					}
					s := p.sum[best*d : (best+1)*d]
					for j, v := range row {
						s[j] += v
					}
				}
			}(&parts[w])
		}
		wg.Wait()
		sum, cnt := make([]float64, k*d), make([]int, k)
		changed, far, farD := 0, -1, -1.0
		inertia = 0
		for _, p := range parts {
			for i, v := range p.sum {
				sum[i] += v
			}
			for i, v := range p.cnt {
				cnt[i] += v
			}
			changed += p.changed
			inertia += p.inertia
			if p.farD > farD {
				far, farD = p.far, p.farD
			}
		}
		empty := false
		for c := range k {
			if cnt[c] == 0 {
				if far >= 0 {
					copy(cent[c*d:(c+1)*d], x[far*d:(far+1)*d])
					far = -1
					empty = true
				}
				continue
			}
			for j := range d {
				cent[c*d+j] = sum[c*d+j] / float64(cnt[c])
			}
		}
		if changed == 0 && !empty {
			break
		}
	}
	return cent, labels, inertia
}

// silhouette is the mean silhouette coefficient (Rousseeuw 1987) of the
// labelled points: s = (b - a) / max(a, b) with a the mean distance to the
// point's own cluster and b to the nearest other cluster; 0 for singletons.
func silhouette(x []float64, labels []int, n, d, k int) float64 {
	cnt := make([]int, k)
	for _, l := range labels {
		cnt[l]++
	}
	total := 0.0
	sums := make([]float64, k)
	for i := range n {
		clear(sums)
		row := x[i*d : (i+1)*d]
		for j := range n {
			if j != i {
				sums[labels[j]] += math.Sqrt(dist2(row, x[j*d:(j+1)*d]))
			}
		}
		own := labels[i]
		if cnt[own] <= 1 {
			continue
		}
		a := sums[own] / float64(cnt[own]-1)
		b := math.Inf(1)
		for c := range k {
			if c != own && cnt[c] > 0 {
				b = math.Min(b, sums[c]/float64(cnt[c]))
			}
		}
		if m := math.Max(a, b); m > 0 && !math.IsInf(b, 1) {
			total += (b - a) / m
		}
	}
	return total / float64(n)
}
