package action

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/store"
)

// UnsubscribePath is where one-click unsubscribe links point, under the
// server's public URL.
const UnsubscribePath = "/unsubscribe/"

// unsubscribeTag is the associated data of unsubscribe tokens, so no other
// sealed value (a destination's secrets) passes for one.
var unsubscribeTag = []byte("list-unsubscribe")

// unsubToken is what an unsubscribe link carries, sealed: who to
// unsubscribe. The email is kept too, so a link still works after its
// profile was merged into another.
type unsubToken struct {
	P string `json:"p"`
	E string `json:"e"`
}

// unsubscribeURL makes the recipient's link: the token is sealed with the
// server key, so it cannot be forged or changed to unsubscribe someone
// else, and needs no table.
func unsubscribeURL(k *connector.Key, base, profileID, email string) (string, error) {
	b, _ := json.Marshal(unsubToken{profileID, email})
	sealed, err := connector.Seal(k, b, unsubscribeTag)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(base, "/") + UnsubscribePath + base64.RawURLEncoding.EncodeToString(sealed), nil
}

func openUnsubscribe(k *connector.Key, token string) (unsubToken, error) {
	var t unsubToken
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return t, fmt.Errorf("not a token: %v", err)
	}
	b, err := connector.Open(k, raw, unsubscribeTag)
	if err != nil {
		return t, err
	}
	return t, json.Unmarshal(b, &t)
}

var unsubPage = template.Must(template.New("unsub").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Unsubscribe</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">
{{if .Done}}<h1>You are unsubscribed</h1><p>{{.Email}} will get no more of these emails.</p>
{{else if .Error}}<h1>This link does not work</h1><p>{{.Error}}</p>
{{else}}<h1>Unsubscribe</h1><p>Stop emails to {{.Email}}?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>{{end}}
</body></html>
`))

// UnsubscribeHandler serves the links of List-Unsubscribe, with no
// authentication (the sealed token is the authority). POST unsubscribes
// at once: it is what a mailbox provider sends for RFC 8058 one-click
// (body List-Unsubscribe=One-Click) and what the page's button sends.
// GET only shows the page with that button, because link scanners and
// prefetchers follow GET links nobody clicked.
//
// Unsubscribing records the profile's email consent as withdrawn (source
// "list-unsubscribe"), the consent every email automation checks before
// sending, so nothing more is emailed until the customer opts in again.
func (s *Service) UnsubscribeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		token := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		page := struct {
			Done         bool
			Email, Error string
		}{}
		if s.key == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			page.Error = "The server cannot read unsubscribe links (" + connector.KeyEnv + " is not set)."
			unsubPage.Execute(w, page)
			return
		}
		t, err := openUnsubscribe(s.key, token)
		if err != nil {
			w.WriteHeader(http.StatusNotFound)
			page.Error = "It is incomplete or was not made by this server. Copy the whole link from the email."
			unsubPage.Execute(w, page)
			return
		}
		page.Email = t.E
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost:
			if err := s.unsubscribe(r, t); err != nil {
				w.WriteHeader(http.StatusInternalServerError)
				page.Error = "Please try again in a minute."
				unsubPage.Execute(w, page)
				return
			}
			page.Done = true
		default:
			w.Header().Set("Allow", "GET, POST")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		unsubPage.Execute(w, page)
	})
}

// unsubscribe withdraws email consent from the profile that now holds the
// token's email (merges move it), else the token's profile.
func (s *Service) unsubscribe(r *http.Request, t unsubToken) error {
	ctx := r.Context()
	pid := t.P
	if id, err := s.st.ProfileFor(ctx, kiln.Identifier{Kind: kiln.Email, Value: t.E}); err == nil && id != "" {
		pid = id
	}
	c := store.ConsentChange{ProfileID: pid, Consent: kiln.Consent{Channel: kiln.ChannelEmail, Granted: false, Source: "list-unsubscribe", At: s.now().UTC()}}
	err := s.st.SetConsent(ctx, c)
	if store.IsNotFound(err) {
		return nil // the profile is gone: nothing will be sent to it
	}
	return err
}
