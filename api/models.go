package api

import (
	"context"
	"net/http"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/engine"
)

// Models are the engine's customer-model operations.
type Models interface {
	ModelReport() *engine.ModelReport
	RefitModels(ctx context.Context, o engine.ModelOptions) (*engine.ModelReport, error)
}

func (s *Server) modelRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v1/models", s.modelReport)
	m.HandleFunc("POST /api/v1/models/refit", s.refitModels)
}

func (s *Server) modelReport(w http.ResponseWriter, r *http.Request) {
	rep := s.Models.ModelReport()
	if rep == nil {
		s.fail(w, r, kiln.Errorf(kiln.ENotFound, "the customer models have not been fitted yet (they fit on start and daily; POST /api/v1/models/refit fits them now)"))
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}

// refitModels fits now; ?calibration_end=YYYY-MM-DD&holdout_end=YYYY-MM-DD
// fit on a fixed period, ?unit=days|weeks picks the time unit.
func (s *Server) refitModels(w http.ResponseWriter, r *http.Request) {
	var o engine.ModelOptions
	q := r.URL.Query()
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"calibration_end", &o.CalibrationEnd}, {"holdout_end", &o.HoldoutEnd}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.DateOnly, v)
			if err != nil {
				s.fail(w, r, kiln.Errorf(kiln.EInvalid, "%s %q: want a date such as 1997-09-30", p.name, v))
				return
			}
			*p.dst = t
		}
	}
	switch q.Get("unit") {
	case "", "weeks":
	case "days":
		o.Unit = 24 * time.Hour
	default:
		s.fail(w, r, kiln.Errorf(kiln.EInvalid, "unit %q: use weeks or days", q.Get("unit")))
		return
	}
	rep, err := s.Models.RefitModels(r.Context(), o)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, rep)
}
