package connectortest

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/kiln-cdp/kiln/connector"
)

// Person is what a fake vendor knows about one contact.
type Person struct {
	ID     string // the vendor's id for the contact
	Email  string
	Phone  string
	UserID string         // external id
	Traits map[string]any // attributes as the vendor stores them
	Lists  map[string]bool
}

// Book is a fake vendor's contacts: safe for concurrent use by the fake's
// handlers and the test.
type Book struct {
	mu     sync.Mutex
	people []*Person
	next   int
	Prefix string // prefix of generated ids
}

// Lock runs f with the book locked, for handlers that change several
// people at once.
func (b *Book) Lock(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
}

// Create adds a contact and returns it; callers hold no lock.
func (b *Book) Create(email, phone, userID string) *Person {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.create(email, phone, userID)
}

func (b *Book) create(email, phone, userID string) *Person {
	b.next++
	p := &Person{ID: fmt.Sprintf("%s%d", b.Prefix, b.next), Email: strings.ToLower(email), Phone: phone, UserID: userID,
		Traits: map[string]any{}, Lists: map[string]bool{}}
	b.people = append(b.people, p)
	return p
}

// Upsert finds the contact by email, then user id, then phone, creating it
// when none matches.
func (b *Book) Upsert(email, phone, userID string) *Person {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.find(email, phone, userID); p != nil {
		if p.Email == "" {
			p.Email = strings.ToLower(email)
		}
		if p.UserID == "" {
			p.UserID = userID
		}
		if p.Phone == "" {
			p.Phone = phone
		}
		return p
	}
	return b.create(email, phone, userID)
}

// Find returns the contact with this email, user id or phone (the first
// non-empty one that matches), or nil.
func (b *Book) Find(email, phone, userID string) *Person {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.find(email, phone, userID)
}

func (b *Book) find(email, phone, userID string) *Person {
	email = strings.ToLower(email)
	for _, p := range b.people {
		if email != "" && p.Email == email {
			return p
		}
	}
	for _, p := range b.people {
		if userID != "" && p.UserID == userID {
			return p
		}
	}
	for _, p := range b.people {
		if phone != "" && p.Phone == phone {
			return p
		}
	}
	return nil
}

// ByID returns the contact with the vendor id, or nil.
func (b *Book) ByID(id string) *Person {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.people {
		if p.ID == id {
			return p
		}
	}
	return nil
}

// FindMember finds the contact a connector.Member stands for.
func (b *Book) FindMember(m connector.Member) *Person { return b.Find(m.Email, m.Phone, m.UserID) }

// Set changes a contact under the lock.
func (b *Book) Set(p *Person, f func(p *Person)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(p)
}

// InList reports whether the member is on list key.
func (b *Book) InList(m connector.Member, key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.find(m.Email, m.Phone, m.UserID)
	return p != nil && p.Lists[key]
}

// Trait returns a stored attribute of the member.
func (b *Book) Trait(m connector.Member, name string) (any, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.find(m.Email, m.Phone, m.UserID)
	if p == nil {
		return nil, false
	}
	v, ok := p.Traits[name]
	return v, ok
}

// Members returns the emails on list key, sorted.
func (b *Book) Members(key string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, p := range b.people {
		if p.Lists[key] {
			out = append(out, p.Email)
		}
	}
	sort.Strings(out)
	return out
}

// Where returns the first contact match accepts, or nil; match runs under
// the book's lock and must not call the book.
func (b *Book) Where(match func(p *Person) bool) *Person {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.people {
		if match(p) {
			return p
		}
	}
	return nil
}

// People returns copies of the contacts on list key, in creation order:
// what a fake lists for a membership read.
func (b *Book) People(key string) []Person {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Person
	for _, p := range b.people {
		if p.Lists[key] {
			out = append(out, *p)
		}
	}
	return out
}
