package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kiln-cdp/kiln"
)

// Op is what a change asks the destination to do.
type Op string

// The operations a connector understands.
const (
	OpAdd    Op = "add"    // put the member on the segment's list, tag or audience
	OpRemove Op = "remove" // take the member off it; removing a non-member succeeds
	OpUpsert Op = "upsert" // create or update the member's attributes (Segment is empty)
)

// Member is the profile a change is about, with the identifiers and
// attributes the destination may need. Connectors use the identifiers their
// vendor keys on (Doc.Identifiers) and fail the change permanently when none
// is present.
type Member struct {
	ProfileID string         `json:"profileId"` // Kiln's profile id
	Email     string         `json:"email,omitempty"`
	Phone     string         `json:"phone,omitempty"`  // E.164
	UserID    string         `json:"userId,omitempty"` // the customer's own user id
	Traits    map[string]any `json:"traits,omitempty"` // attributes to write on upsert
}

// Change is one action for one member.
type Change struct {
	Op      Op     `json:"op"`
	Member  Member `json:"member"`
	Segment string `json:"segment,omitempty"` // Kiln segment name, for add and remove
	Version int64  `json:"version,omitempty"` // segment definition version
	// At is when the transition happened; zero means now.
	At time.Time `json:"at,omitzero"`
	// IdempotencyKey is stable across retries of the same change; it is sent
	// to vendors that deduplicate by key (see Doc.IdempotencyKey).
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// Result is the outcome of one change: Err is nil when the vendor accepted
// it. Err is an *Error for vendor and transport failures and for changes the
// connector refused (missing identifier, unmapped segment).
type Result struct {
	Err error
}

// Rate is a vendor's documented request limit for the endpoints a
// connector uses. The outbox's limiter uses it to pace Deliver calls;
// connectors also pace their own requests with it (see Limiter), because one
// Deliver may take several requests.
type Rate struct {
	PerSecond float64 // sustained requests per second
	Burst     int     // requests allowed at once above the sustained rate
}

func (r Rate) String() string { return fmt.Sprintf("%g/s burst %d", r.PerSecond, r.Burst) }

// Connector delivers changes to one configured destination. Implementations
// are safe for concurrent use.
type Connector interface {
	// Deliver sends changes and returns exactly one Result per change, in
	// the same order. It never panics on bad input: a change it cannot send
	// gets a permanent *Error. Batches larger than MaxBatch are split. When
	// ctx ends, unsent changes fail with a retryable *Error wrapping
	// ctx.Err().
	Deliver(ctx context.Context, changes []Change) []Result
	// MaxBatch is the most changes one vendor request carries (the
	// configured batch_size, else the vendor's limit).
	MaxBatch() int
	// RateLimit is the vendor's documented request rate (or the configured
	// requests_per_second).
	RateLimit() Rate
}

// Lister is a Connector whose vendor can list the members of the list,
// tag or audience a segment maps to: a full reconciliation compares them
// with the segment's members and fixes both directions. Connectors whose
// vendor cannot list (or whose listing does not name members by an
// identifier Kiln keeps) do not implement it; their reconciliation
// re-asserts Kiln's state instead.
type Lister interface {
	// ListMembers calls fn with the members of the vendor object segment
	// maps to, a page at a time, each with the identifiers the vendor
	// returns (Email, UserID, Phone; ProfileID is empty). An unmapped
	// segment is a permanent *Error; vendor and transport failures are
	// *Error as in Deliver. An error from fn stops the listing and is
	// returned.
	ListMembers(ctx context.Context, segment string, fn func([]Member) error) error
}

// Secrets are a destination's credentials by name (for example "api_key").
// They are plain only in memory; see Seal.
type Secrets map[string]string

// Require returns the named secrets, or an error naming every missing one.
func (s Secrets) Require(vendor string, names ...string) ([]string, error) {
	var missing []string
	vals := make([]string, len(names))
	for i, n := range names {
		vals[i] = strings.TrimSpace(s[n])
		if vals[i] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s secrets: missing %s", vendor, strings.Join(missing, ", "))
	}
	return vals, nil
}

// Factory makes a connector from its configuration (decoded strictly with
// Decode) and secrets. httpClient carries timeouts and proxies; nil means
// http.DefaultClient.
type Factory func(cfg json.RawMessage, secrets Secrets, httpClient *http.Client) (Connector, error)

// Doc describes a connector for users and for the shared tests.
type Doc struct {
	Name        string   // vendor's product name, e.g. "Klaviyo"
	Summary     string   // what add, remove and upsert do there
	Secrets     []string // secret names the factory requires
	Required    []string // configuration fields that must be set
	Identifiers []string // member fields the vendor keys on, in order of preference
	Ops         []Op     // operations supported
	MaxBatch    int      // vendor's per-request limit used by default
	Rate        Rate     // vendor's documented limit used by default
	// Spec is the vendor's machine-readable API description the tests
	// validate requests against, relative to shared/specs; "" when the
	// vendor publishes none we may use (then the fake follows the docs).
	Spec string
	// IdempotencyKey says where Change.IdempotencyKey goes; "" when the
	// vendor has no deduplication key (its operations are idempotent anyway).
	IdempotencyKey string
}

// Supports reports whether the connector implements op.
func (d Doc) Supports(op Op) bool {
	for _, o := range d.Ops {
		if o == op {
			return true
		}
	}
	return false
}

type entry struct {
	f   Factory
	doc Doc
}

var (
	regMu    sync.RWMutex
	registry = map[string]entry{}
	idRE     = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// Register makes a connector available under id. Call it from init. It
// panics on an empty or non-lower-case id, a nil factory or a duplicate id:
// those are programming errors that must fail at start-up, not at delivery.
func Register(id string, f Factory, doc Doc) {
	if !idRE.MatchString(id) {
		panic(fmt.Sprintf("connector: invalid id %q (want lower-case letters, digits and _)", id))
	}
	if f == nil {
		panic("connector: nil factory for " + id)
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[id]; dup {
		panic("connector: duplicate registration of " + id)
	}
	registry[id] = entry{f, doc}
}

// Lookup returns the factory and doc registered under id.
func Lookup(id string) (Factory, Doc, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	e, ok := registry[id]
	return e.f, e.doc, ok
}

// IDs returns the registered ids, sorted.
func IDs() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	ids := make([]string, 0, len(registry))
	for id := range registry {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// New makes a connector of the registered kind id. Factories do no I/O,
// so New also validates a destination's config and secrets before they are
// saved.
func New(id string, cfg json.RawMessage, secrets Secrets, httpClient *http.Client) (Connector, error) {
	f, _, ok := Lookup(id)
	if !ok {
		return nil, fmt.Errorf("connector %q is not registered (known: %s)", id, strings.Join(IDs(), ", "))
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return f(cfg, secrets, httpClient)
}

// FromTransition makes the change a segment transition asks for: add on
// entry, remove on exit, with the transition's segment, version and time,
// and an idempotency key derived from the transition's id, so every
// redelivery of the same transition carries the same key.
func FromTransition(tr kiln.Transition, m Member) Change {
	op := OpRemove
	if tr.Entered {
		op = OpAdd
	}
	if m.ProfileID == "" {
		m.ProfileID = tr.ProfileID
	}
	return Change{Op: op, Member: m, Segment: tr.Segment, Version: tr.Version, At: tr.At,
		IdempotencyKey: fmt.Sprintf("kiln-transition-%d", tr.ID)}
}
