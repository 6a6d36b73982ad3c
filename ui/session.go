package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-cdp/kiln"
)

// cookieName is the session cookie. Its value is
// base64url(JSON payload) "." base64url(HMAC-SHA256(secret, payload)).
const cookieName = "kiln_session"

// session is a signed-in browser.
type session struct {
	// ID is random per sign-in; the CSRF token is derived from it, so a
	// token is only good for the session it was issued to.
	ID string `json:"sid"`
	// KeyHash is the hash of the admin key that signed in, so revoking
	// the key ends the session (the token itself is never kept).
	KeyHash string `json:"kh"`
	KeyID   string `json:"kid"`
	Expires int64  `json:"exp"` // Unix seconds
}

func (s *Server) sign(b []byte) []byte {
	m := hmac.New(sha256.New, s.cfg.Secret)
	m.Write(b)
	return m.Sum(nil)
}

func (s *Server) encodeSession(sess *session) string {
	b, _ := json.Marshal(sess)
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(s.sign(b))
}

// decodeSession checks the cookie's signature and expiry.
func (s *Server) decodeSession(v string) (*session, bool) {
	p, sig, ok := strings.Cut(v, ".")
	if !ok {
		return nil, false
	}
	b, err1 := base64.RawURLEncoding.DecodeString(p)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.sign(b)) {
		return nil, false
	}
	var sess session
	if err := json.Unmarshal(b, &sess); err != nil || sess.ID == "" {
		return nil, false
	}
	if s.now().Unix() >= sess.Expires {
		return nil, false
	}
	return &sess, true
}

// csrfToken is the session's synchronizer token: an HMAC of its id under
// a separate label, so it cannot be computed without the secret.
func (s *Server) csrfToken(sess *session) string {
	return hex.EncodeToString(s.sign([]byte("csrf\x00" + sess.ID)))
}

func (s *Server) checkCSRF(r *http.Request, sess *session) bool {
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = r.PostFormValue("csrf")
	}
	want := s.csrfToken(sess)
	return tok != "" && hmac.Equal([]byte(tok), []byte(want))
}

// authed wraps a handler: no session (or a revoked key) redirects to the
// sign-in page; a POST without the session's CSRF token is refused.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := s.currentSession(r)
		if sess == nil {
			// Scripts get a JSON error they can show; a person following a
			// link or submitting a form goes to the sign-in page.
			script := strings.HasSuffix(r.URL.Path, ".json") || strings.HasPrefix(r.URL.Path, "/ui/jobs/") ||
				strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || r.Header.Get("X-CSRF-Token") != ""
			if script {
				jsonError(w, kiln.Errorf(kiln.EUnauthorized, "you are signed out: sign in again (reload the page)"))
				return
			}
			next := r.URL.RequestURI()
			if r.Method != http.MethodGet {
				next = r.Referer() // come back to the form, not to its action
				if u, err := url.Parse(next); err == nil {
					next = u.RequestURI()
				}
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 4<<20)
			if !s.checkCSRF(r, sess) {
				s.log.Warn("ui: request without a valid CSRF token refused", "path", r.URL.Path)
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte("This form has expired or did not come from Kiln. Go back, reload the page and try again.\n"))
				return
			}
		}
		h(w, r, sess)
	})
}

func (s *Server) currentSession(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	sess, ok := s.decodeSession(c.Value)
	if !ok {
		return nil
	}
	k, err := s.keys.KeyByHash(r.Context(), sess.KeyHash)
	if err != nil || k.Kind != kiln.AdminKey || k.RevokedAt != nil {
		return nil
	}
	return sess
}

type loginData struct {
	Next string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.currentSession(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.render(w, r, nil, http.StatusOK, "login", page{Title: "Sign in", Data: loginData{Next: r.URL.Query().Get("next")}})
}

// login checks the posted admin key and sets the session cookie. A
// cross-site form cannot sign a victim in to the attacker's workspace:
// a foreign Origin is refused.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			http.Error(w, "sign-in from another site refused", http.StatusForbidden)
			return
		}
	}
	next := r.PostFormValue("next")
	tok := strings.TrimSpace(r.PostFormValue("key"))
	fail := func(msg string) {
		s.render(w, r, nil, http.StatusUnauthorized, "login", page{Title: "Sign in", Error: msg, Data: loginData{Next: next}})
	}
	if tok == "" {
		fail("Enter your admin key.")
		return
	}
	hash := kiln.HashToken(tok)
	k, err := s.keys.KeyByHash(r.Context(), hash)
	switch {
	case err != nil && kiln.ErrorCode(err) != kiln.ENotFound:
		s.log.Error("ui: checking a key at sign-in", "err", err)
		fail("The key could not be checked just now. Try again in a moment.")
		return
	case err != nil:
		fail("That key is not known. Check you copied the whole admin key (it starts with kiln_a_).")
		return
	case k.RevokedAt != nil:
		fail("That key was revoked. Ask for a new admin key.")
		return
	case k.Kind != kiln.AdminKey:
		fail("That is a write key: it can only send events. Sign in with an admin key (kiln_a_...).")
		return
	}
	sid := make([]byte, 18)
	_, _ = rand.Read(sid)
	exp := s.now().Add(s.cfg.SessionTTL)
	sess := &session{ID: base64.RawURLEncoding.EncodeToString(sid), KeyHash: hash, KeyID: k.ID, Expires: exp.Unix()}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: s.encodeSession(sess), Path: "/ui/", Expires: exp,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	s.log.Info("ui: signed in", "key", k.ID)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/ui/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/ui/login?flash="+url.QueryEscape("You are signed out."), http.StatusSeeOther)
}

// safeNext keeps redirects after sign-in inside the UI.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/ui/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return "/ui/"
}
