package storetest

import (
	"bytes"
	"testing"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// testEngineState: what a Resolution writes beside the transitions is
// written with them or not at all, and reads back as written.
func testEngineState(t *testing.T, s store.Store) {
	twoProfiles(t, s)
	traits := func() map[string]map[string]any {
		got := map[string]map[string]any{}
		if err := s.ScanModelTraits(ctx, func(pid string, t map[string]any) error {
			got[pid] = t
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if b, err := s.GetBlob(ctx, "models"); err != nil || b != nil {
		t.Fatalf("blob before any: %q, %v", b, err)
	}
	mustApply(t, s, store.Resolution{
		Transitions: []kiln.Transition{tr("vip", "p_a", true, 10, 1, kiln.ReasonModelRefit)},
		Definitions: []kiln.Definition{def("vip", "segment", 1, at(10))},
		ModelTraits: []store.ModelTraits{
			{ProfileID: "p_a", Traits: map[string]any{"churn_risk": 0.25, "rfm_segment": "Champions"}},
			{ProfileID: "p_b", Traits: map[string]any{"churn_risk": 0.5}},
		},
		Blobs:       []store.Blob{{Name: "models", Data: []byte{0, 1, 2}}},
		Checkpoints: []store.Checkpoint{{Name: "engine-clock", Seq: 1234}},
	})
	if b, err := s.GetBlob(ctx, "models"); err != nil || !bytes.Equal(b, []byte{0, 1, 2}) {
		t.Errorf("blob: %v, %v", b, err)
	}
	if seq, _ := s.GetCheckpoint(ctx, "engine-clock"); seq != 1234 {
		t.Errorf("clock checkpoint %d, want 1234", seq)
	}
	if ds, err := s.Definitions(ctx); err != nil || len(ds) != 1 || ds[0].Name != "vip" {
		t.Errorf("definitions saved with the resolution: %+v, %v", ds, err)
	}
	got := traits()
	if !jsonEqual(got["p_a"], map[string]any{"churn_risk": 0.25, "rfm_segment": "Champions"}) || len(got) != 2 {
		t.Errorf("model traits: %v", got)
	}
	if of, err := s.ModelTraitsOf(ctx, []string{"p_b", "p_nobody"}); err != nil || len(of) != 1 || !jsonEqual(of["p_b"], map[string]any{"churn_risk": 0.5}) {
		t.Errorf("model traits of p_b and an unknown profile: %v, %v", of, err)
	}
	if of, err := s.ModelTraitsOf(ctx, nil); err != nil || len(of) != 0 {
		t.Errorf("model traits of no profiles: %v, %v", of, err)
	}
	// Replaced whole, deleted with nil, dropped when merged away.
	mustApply(t, s, store.Resolution{
		ModelTraits: []store.ModelTraits{{ProfileID: "p_a", Traits: map[string]any{"churn_risk": 0.75}}},
		Blobs:       []store.Blob{{Name: "models", Data: []byte("v2")}},
	})
	if got := traits(); !jsonEqual(got["p_a"], map[string]any{"churn_risk": 0.75}) {
		t.Errorf("replaced model traits: %v", got["p_a"])
	}
	if b, _ := s.GetBlob(ctx, "models"); string(b) != "v2" {
		t.Errorf("replaced blob: %q", b)
	}
	mustApply(t, s, store.Resolution{Merges: []kiln.Merge{{Into: "p_a", From: "p_b", Rule: "shared-event", At: at(30)}}})
	if got := traits(); got["p_b"] != nil || got["p_a"] == nil {
		t.Errorf("after merging p_b into p_a: %v", got)
	}
	mustApply(t, s, store.Resolution{ModelTraits: []store.ModelTraits{{ProfileID: "p_a"}}})
	if got := traits(); len(got) != 0 {
		t.Errorf("after deleting: %v", got)
	}
	// A failed resolution leaves none of it.
	err := s.ApplyResolution(ctx, store.Resolution{
		Identities:  []kiln.Identity{{Identifier: ident(kiln.Email, "bad@example.com")}},
		ModelTraits: []store.ModelTraits{{ProfileID: "p_a", Traits: map[string]any{"x": 1.0}}},
		Blobs:       []store.Blob{{Name: "models", Data: []byte("v3")}},
		Checkpoints: []store.Checkpoint{{Name: "engine-clock", Seq: 9999}},
		Definitions: []kiln.Definition{def("other", "segment", 1, at(40))},
	})
	if err == nil {
		t.Fatal("invalid resolution succeeded")
	}
	if got := traits(); len(got) != 0 {
		t.Errorf("model traits of a failed resolution: %v", got)
	}
	if b, _ := s.GetBlob(ctx, "models"); string(b) != "v2" {
		t.Errorf("blob of a failed resolution: %q", b)
	}
	if seq, _ := s.GetCheckpoint(ctx, "engine-clock"); seq != 1234 {
		t.Errorf("clock of a failed resolution: %d", seq)
	}
	if ds, _ := s.Definitions(ctx); len(ds) != 1 {
		t.Errorf("definitions of a failed resolution: %+v", ds)
	}
}

// testSnapshots: parts come back in order per generation; old
// generations can be dropped.
func testSnapshots(t *testing.T, s store.Store) {
	for gen := int64(1); gen <= 2; gen++ {
		for part := int64(2); part >= 0; part-- { // written out of order
			if err := s.PutSnapshotPart(ctx, gen, part, []byte{byte(gen), byte(part)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(gen int64) [][]byte {
		var out [][]byte
		if err := s.ScanSnapshot(ctx, gen, func(b []byte) error {
			out = append(out, bytes.Clone(b))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := read(2); len(got) != 3 || !bytes.Equal(got[0], []byte{2, 0}) || !bytes.Equal(got[2], []byte{2, 2}) {
		t.Errorf("generation 2: %v", got)
	}
	if err := s.DropSnapshots(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got := read(1); len(got) != 0 {
		t.Errorf("generation 1 after dropping: %v", got)
	}
	if got := read(2); len(got) != 3 {
		t.Errorf("generation 2 after dropping the others: %v", got)
	}
}
