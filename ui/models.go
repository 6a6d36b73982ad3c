package ui

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/intel"
	"github.com/kiln-cdp/kiln/store"
)

// The models page shows the customer-intelligence report (BG/NBD and
// Gamma-Gamma fits) built from the stored orders. Reading the whole log
// is not a page view's job, so a button builds it in the background and
// the page shows the last one. When the engine keeps the models itself,
// this page should read its results instead.

type intelState struct {
	mu      sync.Mutex
	running bool
	started time.Time
	built   time.Time
	took    time.Duration
	report  *intel.Report
	text    string
	orders  int
	err     string
}

type modelsData struct {
	Running bool
	Started time.Time
	Built   time.Time
	Took    string
	Report  *intel.Report
	Text    string
	Orders  int
	Err     string
}

func (s *Server) modelsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	st := s.intel
	st.mu.Lock()
	d := modelsData{Running: st.running, Started: st.started, Built: st.built, Took: st.took.Round(time.Millisecond).String(), Report: st.report, Text: st.text, Orders: st.orders, Err: st.err}
	st.mu.Unlock()
	s.render(w, r, sess, http.StatusOK, "models", page{Title: "Models", Nav: "models", Data: d})
}

func (s *Server) buildModels(w http.ResponseWriter, r *http.Request, sess *session) {
	st := s.intel
	st.mu.Lock()
	if !st.running {
		st.running, st.started, st.err = true, s.now(), ""
		go s.runModels(context.WithoutCancel(r.Context()))
	}
	st.mu.Unlock()
	http.Redirect(w, r, "/ui/models", http.StatusSeeOther)
}

func (s *Server) runModels(ctx context.Context) {
	start := time.Now()
	rep, text, orders, err := s.buildReport(ctx)
	st := s.intel
	st.mu.Lock()
	defer st.mu.Unlock()
	st.running = false
	if err != nil {
		s.log.Error("ui: building the models report", "err", err)
		st.err = kiln.ErrorMessage(err)
		if kiln.ErrorCode(err) == kiln.EInternal {
			st.err = "the report could not be built: " + err.Error()
		}
		return
	}
	st.report, st.text, st.orders, st.built, st.took = rep, text, orders, s.now(), time.Since(start)
}

// buildReport reads every completed order from the log, attributes it to
// its profile and fits the models with weeks as the time unit.
func (s *Server) buildReport(ctx context.Context) (*intel.Report, string, int, error) {
	owner := map[string]string{} // anchor -> profile
	var txns []intel.Txn
	for after := int64(0); ; {
		evs, err := s.st.ReadEvents(ctx, after, 20000)
		if err != nil {
			return nil, "", 0, err
		}
		if len(evs) == 0 {
			break
		}
		after = evs[len(evs)-1].Seq
		for _, e := range evs {
			if e.Type != kiln.Track || (e.Name != kiln.OrderCompleted && e.Name != kiln.OrderRefunded) {
				continue
			}
			amt, ok := number(e.Properties["revenue"])
			if !ok {
				if amt, ok = number(e.Properties["total"]); !ok {
					continue
				}
			}
			if e.Name == kiln.OrderRefunded {
				amt = -amt
			}
			pid, seen := owner[e.Anchor]
			if !seen {
				pid, err = s.st.ProfileFor(ctx, kiln.ParseIdentifier(e.Anchor))
				if err != nil && !store.IsNotFound(err) {
					return nil, "", 0, err
				}
				owner[e.Anchor] = pid
			}
			if pid == "" {
				continue // deleted profile
			}
			txns = append(txns, intel.Txn{Customer: pid, Time: e.Timestamp, Amount: amt})
		}
	}
	if len(txns) == 0 {
		return nil, "", 0, kiln.Errorf(kiln.EInvalid, "there are no completed orders in the log yet, so there is nothing to fit")
	}
	cs, err := intel.Summarize(txns, s.now().UTC(), 7*24*time.Hour)
	if err != nil {
		return nil, "", 0, fmt.Errorf("summarising %d orders: %w", len(txns), err)
	}
	rep := intel.BuildReport(cs, intel.FitOptions{})
	return &rep, rep.String(), len(txns), nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}
