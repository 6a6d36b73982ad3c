package action

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/egress"
	"github.com/kiln-cdp/kiln/store"
)

// Service runs the outbox (Planner and Dispatcher) and manages
// destinations, automations, REST Hooks subscriptions and dead letters.
type Service struct {
	st         store.Store
	key        *connector.Key
	now        func() time.Time
	Planner    *Planner
	Dispatcher *Dispatcher
	// SegmentExists, if set, refuses automations on unknown segments.
	SegmentExists func(name string) bool

	allowPrivate bool // DeliveryOptions.AllowPrivate

	reconcileEvery time.Duration
	reconciling    reconcileLocks
}

// New makes a Service; cfg is the dispatcher's configuration.
func New(cfg Config) *Service {
	if cfg.HTTPClient == nil {
		workers := cfg.Workers
		if workers <= 0 {
			workers = 32
		}
		cfg.HTTPClient = egress.Client(cfg.AllowPrivate, workers)
	}
	cfg.DeliveryOptions.key = cfg.Key
	d := NewDispatcher(cfg)
	s := &Service{st: cfg.Store, key: cfg.Key, now: d.cfg.Now, allowPrivate: cfg.AllowPrivate, Planner: NewPlanner(cfg.Store, cfg.Now), Dispatcher: d,
		reconcileEvery: cfg.ReconcileEvery}
	d.onUnsubscribe = s.Unsubscribe
	s.Planner.lease, s.Planner.preclaim = d.cfg.Lease, d.room
	return s
}

// Reload reads the automations into the planner and the dispatcher. Call
// it before the engine starts.
func (s *Service) Reload(ctx context.Context) error {
	if err := s.Planner.Reload(ctx); err != nil {
		return err
	}
	return s.Dispatcher.Reload(ctx)
}

// Run delivers the outbox until ctx ends. It also rereads the automations
// every RefreshEvery, so changes made through another server sharing the
// database take effect here too, and reconciles every connector
// destination every Config.ReconcileEvery.
func (s *Service) Run(ctx context.Context) error {
	if s.reconcileEvery > 0 {
		go s.runReconcile(ctx, s.reconcileEvery)
	}
	go func() {
		t := time.NewTicker(RefreshEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.Planner.Reload(ctx); err == nil {
					s.Dispatcher.loadAutomations(ctx)
				}
			}
		}
	}()
	return s.Dispatcher.Run(ctx)
}

// DeliveryHealth says how delivery to each destination is going: ok,
// failing or behind, and why.
func (s *Service) DeliveryHealth() []DestinationHealth { return s.Dispatcher.Health() }

// RefreshEvery is how often Run rereads the automations.
const RefreshEvery = 10 * time.Second

// OnTransitions is for engine.Config.OnTransitions: once transitions are
// durable, their items are too, and the dispatcher is woken at once.
func (s *Service) OnTransitions(ts []kiln.Transition) {
	if items := s.Planner.committed(ts); len(items) > 0 {
		s.Dispatcher.offer(items)
	}
	s.Dispatcher.noteDue(s.Planner.takeDelayed())
	if s.Planner.unleased.Swap(false) {
		s.Dispatcher.dirty.Store(true) // Planned wakes it
	}
	if s.Planner.Planned() {
		s.Dispatcher.Wake()
	}
}

// DestinationSpec creates a destination.
type DestinationSpec struct {
	Name      string            `json:"name"`
	Kind      string            `json:"kind"` // webhook, smtp or a connector id
	Config    json.RawMessage   `json:"config,omitempty"`
	Secrets   connector.Secrets `json:"secrets,omitempty"`
	RateLimit float64           `json:"rateLimit,omitempty"` // deliveries per second, 0: the kind's default (unlimited for webhooks)
}

// CreateDestination checks the configuration, seals the secrets with the
// server key (the destination ID as associated data) and stores it.
func (s *Service) CreateDestination(ctx context.Context, spec DestinationSpec) (*store.Destination, error) {
	spec.Name = strings.TrimSpace(spec.Name)
	if spec.Name == "" {
		return nil, kiln.Errorf(kiln.EInvalid, "destination: name is required")
	}
	if spec.RateLimit < 0 {
		return nil, kiln.Errorf(kiln.EInvalid, "destination %s: rateLimit %g: want 0 (default) or more", spec.Name, spec.RateLimit)
	}
	if spec.Kind == KindWebhook && spec.Secrets["secret"] == "" {
		if spec.Secrets == nil {
			spec.Secrets = connector.Secrets{}
		}
		spec.Secrets["secret"] = NewSecret()
	}
	if err := checkConfig(spec.Kind, spec.Config, spec.Secrets); err != nil {
		return nil, err
	}
	if !s.allowPrivate {
		if err := refusePrivate(spec.Kind, spec.Config); err != nil {
			return nil, err
		}
	}
	d := store.Destination{ID: kiln.NewID("dst_"), Name: spec.Name, Kind: spec.Kind, Config: spec.Config, RateLimit: spec.RateLimit, CreatedAt: s.now().UTC()}
	if len(spec.Secrets) > 0 {
		if s.key == nil {
			return nil, kiln.Errorf(kiln.EInvalid, "destination %s has secrets but the server has no %s to encrypt them with", spec.Name, connector.KeyEnv)
		}
		sealed, err := connector.SealSecrets(s.key, spec.Secrets, []byte(d.ID))
		if err != nil {
			return nil, fmt.Errorf("sealing the secrets of destination %s: %w", spec.Name, err)
		}
		d.Sealed = sealed
	}
	if err := s.st.CreateDestination(ctx, d); err != nil {
		if kiln.ErrorCode(err) == kiln.EConflict {
			return nil, kiln.Errorf(kiln.EConflict, "a destination named %q exists already", spec.Name)
		}
		return nil, err
	}
	return &d, nil
}

// Secret returns a webhook destination's signing secret, for receivers.
func (s *Service) Secret(ctx context.Context, idOrName string) (string, error) {
	d, err := s.st.GetDestination(ctx, idOrName)
	if err != nil {
		return "", notFound(err, "no destination %q", idOrName)
	}
	if d.Kind != KindWebhook || len(d.Sealed) == 0 {
		return "", kiln.Errorf(kiln.EInvalid, "destination %s is not a webhook", d.Name)
	}
	sec, err := connector.OpenSecrets(s.key, d.Sealed, []byte(d.ID))
	if err != nil {
		return "", fmt.Errorf("destination %s: %w", d.Name, err)
	}
	return sec["secret"], nil
}

// ListDestinations returns every destination (never its secrets).
func (s *Service) ListDestinations(ctx context.Context) ([]store.Destination, error) {
	return s.st.ListDestinations(ctx)
}

// DeleteDestination removes a destination no automation uses.
func (s *Service) DeleteDestination(ctx context.Context, idOrName string) error {
	d, err := s.st.GetDestination(ctx, idOrName)
	if err != nil {
		return notFound(err, "no destination %q", idOrName)
	}
	autos, err := s.st.ListAutomations(ctx)
	if err != nil {
		return err
	}
	for _, a := range autos {
		if a.Destination == d.ID {
			return kiln.Errorf(kiln.EConflict, "destination %s is used by automation %s: delete that first", d.Name, a.Name)
		}
	}
	if err := s.st.DeleteDestination(ctx, d.ID); err != nil {
		return err
	}
	return s.Reload(ctx)
}

// AutomationSpec creates an automation.
type AutomationSpec struct {
	Name        string          `json:"name"`
	Segment     string          `json:"segment"`
	On          string          `json:"on"`              // enter or exit
	Delay       string          `json:"delay,omitempty"` // Go duration, e.g. "30m"
	Recheck     string          `json:"recheck,omitempty"`
	Destination string          `json:"destination"` // ID or name
	Options     json.RawMessage `json:"options,omitempty"`
	Disabled    bool            `json:"disabled,omitempty"`
}

// CreateAutomation checks and stores an automation, enabled unless the
// spec says otherwise, and starts planning it at once.
func (s *Service) CreateAutomation(ctx context.Context, spec AutomationSpec) (*store.Automation, error) {
	a, err := s.automation(ctx, spec)
	if err != nil {
		return nil, err
	}
	if _, err := s.st.GetAutomation(ctx, a.Name); err == nil {
		return nil, kiln.Errorf(kiln.EConflict, "an automation named %q exists already", a.Name)
	}
	if err := s.st.PutAutomation(ctx, *a); err != nil {
		return nil, err
	}
	return a, s.Reload(ctx)
}

func (s *Service) automation(ctx context.Context, spec AutomationSpec) (*store.Automation, error) {
	name := strings.TrimSpace(spec.Name)
	if name == "" {
		return nil, kiln.Errorf(kiln.EInvalid, "automation: name is required")
	}
	if spec.Segment == "" {
		return nil, kiln.Errorf(kiln.EInvalid, "automation %s: segment is required", name)
	}
	if s.SegmentExists != nil && !s.SegmentExists(spec.Segment) {
		return nil, kiln.Errorf(kiln.EInvalid, "automation %s: no segment %q", name, spec.Segment)
	}
	if isCondition(spec.Recheck) {
		if _, err := parseCondition(spec.Recheck); err != nil {
			return nil, kiln.Errorf(kiln.EInvalid, "automation %s: %s", name, kiln.ErrorMessage(err))
		}
	} else if spec.Recheck != "" && s.SegmentExists != nil && !s.SegmentExists(spec.Recheck) {
		return nil, kiln.Errorf(kiln.EInvalid, "automation %s: recheck: no segment %q", name, spec.Recheck)
	}
	if spec.On != OnEnter && spec.On != OnExit {
		return nil, kiln.Errorf(kiln.EInvalid, "automation %s: on %q: want enter or exit", name, spec.On)
	}
	var delay time.Duration
	if spec.Delay != "" {
		var err error
		if delay, err = time.ParseDuration(spec.Delay); err != nil || delay < 0 {
			return nil, kiln.Errorf(kiln.EInvalid, "automation %s: delay %q: want a duration such as 30m or 2h", name, spec.Delay)
		}
	}
	d, err := s.st.GetDestination(ctx, spec.Destination)
	if err != nil {
		return nil, notFound(err, "automation %s: no destination %q", name, spec.Destination)
	}
	opts, err := ParseOptions(spec.Options)
	if err != nil {
		return nil, kiln.Errorf(kiln.EInvalid, "automation %s: %s", name, kiln.ErrorMessage(err))
	}
	if opts.Op != "" && !isConnector(d.Kind) {
		return nil, kiln.Errorf(kiln.EInvalid, "automation %s: op applies to connector destinations, not %s", name, d.Kind)
	}
	if d.Kind == KindSMTP && opts.Body == "" {
		return nil, kiln.Errorf(kiln.EInvalid, "automation %s: an email needs options.body (its text part; options.html adds an HTML part)", name)
	}
	if d.Kind == KindSMTP {
		if err := parseTemplates(opts); err != nil {
			return nil, kiln.Errorf(kiln.EInvalid, "automation %s: %s", name, kiln.ErrorMessage(err))
		}
	}
	now := s.now().UTC()
	return &store.Automation{ID: kiln.NewID("aut_"), Name: name, Segment: spec.Segment, On: spec.On, Delay: delay, Recheck: spec.Recheck,
		Destination: d.ID, Options: spec.Options, Enabled: !spec.Disabled, CreatedAt: now, UpdatedAt: now}, nil
}

func isConnector(kind string) bool { return kind != KindWebhook && kind != KindSMTP }

// ListAutomations returns every automation, REST Hooks subscriptions included.
func (s *Service) ListAutomations(ctx context.Context) ([]store.Automation, error) {
	return s.st.ListAutomations(ctx)
}

// SetEnabled enables or disables an automation. Items already planned for
// a disabled automation are skipped when they come due.
func (s *Service) SetEnabled(ctx context.Context, idOrName string, enabled bool) (*store.Automation, error) {
	a, err := s.st.GetAutomation(ctx, idOrName)
	if err != nil {
		return nil, notFound(err, "no automation %q", idOrName)
	}
	a.Enabled, a.UpdatedAt = enabled, s.now().UTC()
	if err := s.st.PutAutomation(ctx, *a); err != nil {
		return nil, err
	}
	return a, s.Reload(ctx)
}

// DeleteAutomation removes an automation.
func (s *Service) DeleteAutomation(ctx context.Context, idOrName string) error {
	a, err := s.st.GetAutomation(ctx, idOrName)
	if err != nil {
		return notFound(err, "no automation %q", idOrName)
	}
	if err := s.st.DeleteAutomation(ctx, a.ID); err != nil {
		return err
	}
	return s.Reload(ctx)
}

// Hook is a REST Hooks subscription.
type Hook struct {
	ID        string    `json:"id"`
	TargetURL string    `json:"target_url"`
	Event     string    `json:"event"` // segment.entered or segment.exited
	Segment   string    `json:"segment"`
	Secret    string    `json:"secret,omitempty"` // to verify signatures; shown once
	CreatedAt time.Time `json:"created_at"`
}

// Subscribe creates a REST Hooks subscription: a webhook destination for
// the target URL and an automation on the segment's entries or exits.
func (s *Service) Subscribe(ctx context.Context, targetURL, event, segment string) (*Hook, error) {
	on := map[string]string{EventEntered: OnEnter, EventExited: OnExit}[event]
	if on == "" {
		return nil, kiln.Errorf(kiln.EInvalid, "event %q: want %s or %s", event, EventEntered, EventExited)
	}
	secret := NewSecret()
	cfg, _ := json.Marshal(WebhookConfig{URL: targetURL})
	id := kiln.NewID("hook_")
	d, err := s.CreateDestination(ctx, DestinationSpec{Name: id, Kind: KindWebhook, Config: cfg, Secrets: connector.Secrets{"secret": secret}})
	if err != nil {
		return nil, err
	}
	a, err := s.automation(ctx, AutomationSpec{Name: id, Segment: segment, On: on, Destination: d.ID, Options: json.RawMessage(`{"traits":["*"]}`)})
	if err == nil {
		a.ID, a.Hook = id, true
		err = s.st.PutAutomation(ctx, *a)
	}
	if err != nil {
		s.st.DeleteDestination(ctx, d.ID)
		return nil, err
	}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return &Hook{ID: id, TargetURL: targetURL, Event: event, Segment: segment, Secret: secret, CreatedAt: a.CreatedAt}, nil
}

// Unsubscribe ends a REST Hooks subscription.
func (s *Service) Unsubscribe(ctx context.Context, id string) error {
	a, err := s.st.GetAutomation(ctx, id)
	if err != nil || !a.Hook {
		return kiln.Errorf(kiln.ENotFound, "no REST Hooks subscription %q", id)
	}
	if err := s.st.DeleteAutomation(ctx, a.ID); err != nil {
		return err
	}
	if err := s.st.DeleteDestination(ctx, a.Destination); err != nil && !store.IsNotFound(err) {
		return err
	}
	return s.Reload(ctx)
}

// DeadLetters returns dead items with ID > after, oldest first.
func (s *Service) DeadLetters(ctx context.Context, after int64, limit int) ([]store.OutboxItem, error) {
	return s.st.ListOutbox(ctx, store.OutboxQuery{State: store.OutboxDead, After: after, Limit: limit})
}

// Replay makes dead letters pending again (all of them when ids is empty)
// and wakes the dispatcher.
func (s *Service) Replay(ctx context.Context, ids []int64) (int, error) {
	n, err := s.st.ReplayOutbox(ctx, ids, s.now().UTC())
	if err == nil && n > 0 {
		s.Dispatcher.Wake()
	}
	return n, err
}

func notFound(err error, format string, args ...any) error {
	if store.IsNotFound(err) {
		return kiln.Errorf(kiln.ENotFound, format, args...)
	}
	return err
}
