package action

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/store"
)

// Export formats.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
)

// ExportRow is one member in an export: the membership, the profile's
// main identifiers and its traits.
type ExportRow struct {
	ProfileID string         `json:"profileId"`
	Since     time.Time      `json:"since"`
	Version   int64          `json:"version"`
	Email     string         `json:"email,omitempty"`
	Phone     string         `json:"phone,omitempty"`
	UserID    string         `json:"userId,omitempty"`
	Traits    map[string]any `json:"traits,omitempty"`
}

// Export writes a segment's current members to w as CSV (a header, then
// profile_id, since, version, email, phone, user_id, traits as JSON) or
// NDJSON (one ExportRow per line), by profile id, reading the store a page
// at a time so any size fits in memory. It returns how many it wrote.
func Export(ctx context.Context, st store.Store, segment, format string, w io.Writer) (int, error) {
	var cw *csv.Writer
	var enc *json.Encoder
	switch format {
	case FormatCSV:
		cw = csv.NewWriter(w)
		if err := cw.Write([]string{"profile_id", "since", "version", "email", "phone", "user_id", "traits"}); err != nil {
			return 0, err
		}
	case FormatNDJSON:
		enc = json.NewEncoder(w)
	default:
		return 0, kiln.Errorf(kiln.EInvalid, "export format %q: want csv or ndjson", format)
	}
	n := 0
	after := ""
	for {
		ms, err := st.Members(ctx, segment, after, 1000)
		if err != nil {
			return n, fmt.Errorf("export of %s: members after %q: %w", segment, after, err)
		}
		for _, m := range ms {
			row := ExportRow{ProfileID: m.ProfileID, Since: m.Since, Version: m.Version}
			p, err := st.GetProfile(ctx, m.ProfileID)
			if err != nil && !store.IsNotFound(err) {
				return n, fmt.Errorf("export of %s: profile %s: %w", segment, m.ProfileID, err)
			}
			if p != nil {
				row.Email, row.Phone, row.UserID, row.Traits = identifier(p, kiln.Email), identifier(p, kiln.Phone), identifier(p, kiln.UserID), p.Traits
			}
			if cw != nil {
				traits := ""
				if len(row.Traits) > 0 {
					b, _ := json.Marshal(row.Traits)
					traits = string(b)
				}
				err = cw.Write([]string{row.ProfileID, row.Since.Format(time.RFC3339Nano), fmt.Sprint(row.Version), row.Email, row.Phone, row.UserID, traits})
			} else {
				err = enc.Encode(row)
			}
			if err != nil {
				return n, err
			}
			n++
		}
		if len(ms) < 1000 {
			break
		}
		after = ms[len(ms)-1].ProfileID
	}
	if cw != nil {
		cw.Flush()
		return n, cw.Error()
	}
	return n, nil
}
