package action

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/kiln-cdp/kiln"
	"github.com/kiln-cdp/kiln/connector"
	"github.com/kiln-cdp/kiln/egress"
)

// SMTP TLS modes.
const (
	// TLSAuto upgrades with STARTTLS when the server offers it, and uses
	// implicit TLS on port 465.
	TLSAuto = ""
	// TLSStartTLS requires STARTTLS: a server that does not offer it fails.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, port 465).
	TLSImplicit = "implicit"
	// TLSNone never encrypts: only for a relay on the same host.
	TLSNone = "none"
)

// SMTPConfig is an SMTP destination's configuration; its password
// ("password") is sealed.
type SMTPConfig struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	From     string `json:"from"`
	Username string `json:"username,omitempty"`
	// TLS is auto (""), starttls, implicit or none.
	TLS string `json:"tls,omitempty"`
	// CACert is a PEM certificate (or several) to trust for this server
	// besides the system's: a relay with a private CA or self-signed cert.
	CACert string `json:"ca_cert,omitempty"`
}

func (c SMTPConfig) check() error {
	if c.Host == "" || c.Port <= 0 || c.From == "" {
		return kiln.Errorf(kiln.EInvalid, "smtp config: host, port and from are required")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return kiln.Errorf(kiln.EInvalid, "smtp config: from %q: %v (want news@shop.example or \"Shop\" <news@shop.example>)", c.From, err)
	}
	switch c.TLS {
	case TLSAuto, TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return kiln.Errorf(kiln.EInvalid, "smtp config: tls %q: want starttls, implicit, none or nothing (STARTTLS when offered, implicit on port 465)", c.TLS)
	}
	_, err := c.tlsConfig()
	return err
}

func (c SMTPConfig) mode() string {
	if c.TLS == TLSAuto && c.Port == 465 {
		return TLSImplicit
	}
	return c.TLS
}

func (c SMTPConfig) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12}
	if c.CACert != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(c.CACert)) {
			return nil, kiln.Errorf(kiln.EInvalid, "smtp config: ca_cert: no PEM certificate in it")
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// smtpSender sends one email per delivery.
type smtpSender struct {
	cfg      SMTPConfig
	tls      *tls.Config
	password string
	timeout  time.Duration
	opts     DeliveryOptions
}

// mailData is what email templates see: the transition and the
// recipient's own fields.
type mailData struct {
	Segment   string
	ProfileID string
	Entered   bool
	Email     string
	// Traits are the traits the automation chose (options.traits).
	Traits map[string]any
	// UnsubscribeURL is the one-click unsubscribe link ("" without a
	// public URL), for a visible link in the body.
	UnsubscribeURL string
}

// parseTemplates checks an email's templates when the automation is saved,
// so a typo is an error then rather than a dead letter later.
func parseTemplates(o Options) error {
	for name, text := range map[string]string{"subject": o.Subject, "body": o.Body} {
		if _, err := template.New(name).Parse(text); err != nil {
			return kiln.Errorf(kiln.EInvalid, "email %s template: %v", name, err)
		}
	}
	if _, err := htmltemplate.New("html").Parse(o.HTML); err != nil {
		return kiln.Errorf(kiln.EInvalid, "email html template: %v", err)
	}
	return nil
}

func (s *smtpSender) send(ctx context.Context, d *delivery) error {
	to := identifier(d.profile, kiln.Email)
	if to == "" {
		return connector.Invalid(KindSMTP, "profile %s has no email address", d.item.ProfileID)
	}
	if a, err := mail.ParseAddress(to); err != nil || a.Address != to {
		// Also keeps a line break in a stored value from adding headers.
		return connector.Invalid(KindSMTP, "profile %s: %q is not an email address", d.item.ProfileID, to)
	}
	unsub := ""
	if s.opts.PublicURL != "" && s.opts.key != nil {
		var err error
		if unsub, err = unsubscribeURL(s.opts.key, s.opts.PublicURL, d.item.ProfileID, to); err != nil {
			return connector.Invalid(KindSMTP, "unsubscribe link: %v", err)
		}
	}
	data := mailData{Segment: d.payload.Segment, ProfileID: d.item.ProfileID, Entered: d.payload.Entered, Email: to, Traits: d.traits, UnsubscribeURL: unsub}
	msg, err := buildMessage(s.cfg.From, to, d.item.Key, d.opts, data, time.Now())
	if err != nil {
		return connector.Invalid(KindSMTP, "automation %s: %v", d.auto.Name, err)
	}
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	err = s.deliver(ctx, addr, to, msg)
	if err == nil {
		return nil
	}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return &connector.Error{Vendor: KindSMTP, Request: "SMTP " + addr, Code: kiln.EInvalid, Message: fmt.Sprintf("%d %s", te.Code, te.Msg)}
	}
	if errors.Is(err, errNoStartTLS) {
		return &connector.Error{Vendor: KindSMTP, Request: "SMTP " + addr, Code: kiln.EInvalid, Message: err.Error()}
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return &connector.Error{Vendor: KindSMTP, Request: "SMTP " + addr, Code: kiln.EInvalid, Message: err.Error() + " (trust the server's CA with ca_cert)", Err: err}
	}
	return connector.TransportError(ctx, KindSMTP, "SMTP "+addr, err)
}

var errNoStartTLS = errors.New("the server does not offer STARTTLS and the destination requires it (tls: starttls)")

// deliver runs one SMTP session. The connection's deadline bounds the
// whole session (net/smtp has no context); the dial goes through the
// egress guard.
func (s *smtpSender) deliver(ctx context.Context, addr, to string, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	conn, err := egress.DialContext(ctx, s.opts.AllowPrivate, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) }) // cancellation ends the session
	defer stop()
	mode := s.cfg.mode()
	if mode == TLSImplicit {
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return err
	}
	defer c.Close()
	if mode == TLSAuto || mode == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.tls); err != nil {
				return fmt.Errorf("STARTTLS: %w", err)
			}
		} else if mode == TLSStartTLS {
			return errNoStartTLS
		}
	}
	if s.cfg.Username != "" {
		// PlainAuth itself refuses to send the password unencrypted except
		// to localhost.
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.password, s.cfg.Host)); err != nil {
			return err
		}
	}
	if err := c.Mail(envelopeFrom(s.cfg.From)); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// envelopeFrom is the bare address of from ("Shop" <news@shop.example>),
// for MAIL FROM.
func envelopeFrom(from string) string {
	if a, err := mail.ParseAddress(from); err == nil {
		return a.Address
	}
	return from
}

// buildMessage renders the templates into a MIME message: one text/plain
// part, or multipart/alternative with text and HTML when there is an HTML
// template. Bodies are quoted-printable, so any line length and any
// character survive every relay. With an unsubscribe URL the message
// carries List-Unsubscribe and List-Unsubscribe-Post (RFC 8058), which
// mailbox providers show as their own unsubscribe button.
func buildMessage(from, to, key string, o Options, data mailData, now time.Time) ([]byte, error) {
	subject, err := render("subject", o.Subject, "Kiln: {{.Segment}}", data)
	if err != nil {
		return nil, err
	}
	text, err := render("body", o.Body, "", data)
	if err != nil {
		return nil, err
	}
	var html string
	if o.HTML != "" {
		t, err := htmltemplate.New("html").Option("missingkey=zero").Parse(o.HTML)
		if err != nil {
			return nil, fmt.Errorf("email html template: %v", err)
		}
		var b strings.Builder
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("email html template: %v", err)
		}
		html = b.String()
	}
	var msg bytes.Buffer
	h := func(name, value string) { fmt.Fprintf(&msg, "%s: %s\r\n", name, value) }
	if a, err := mail.ParseAddress(from); err == nil {
		from = a.String() // a display name encoded as RFC 2047 wants
	}
	h("From", from)
	h("To", to)
	h("Subject", mime.QEncoding.Encode("utf-8", strings.Join(strings.Fields(subject), " ")))
	h("Date", now.UTC().Format(time.RFC1123Z))
	h("Message-ID", "<"+key+"@kiln>")
	h("MIME-Version", "1.0")
	if data.UnsubscribeURL != "" {
		h("List-Unsubscribe", "<"+data.UnsubscribeURL+">")
		h("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}
	if html == "" {
		h("Content-Type", "text/plain; charset=utf-8")
		h("Content-Transfer-Encoding", "quoted-printable")
		msg.WriteString("\r\n")
		if err := writeQP(&msg, text); err != nil {
			return nil, err
		}
		return msg.Bytes(), nil
	}
	mw := multipart.NewWriter(&msg)
	h("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	msg.WriteString("\r\n")
	// Least preferred first (RFC 2046): clients show the last they can.
	for _, p := range []struct{ ctype, body string }{{"text/plain; charset=utf-8", text}, {"text/html; charset=utf-8", html}} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {p.ctype}, "Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return nil, err
		}
		if err := writeQP(pw, p.body); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return msg.Bytes(), nil
}

// writeQP writes s quoted-printable with CRLF line ends.
func writeQP(w interface{ Write([]byte) (int, error) }, s string) error {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
	qp := quotedprintable.NewWriter(w)
	if _, err := qp.Write([]byte(s)); err != nil {
		return err
	}
	return qp.Close()
}

func render(name, text, def string, data mailData) (string, error) {
	if text == "" {
		text = def
	}
	t, err := template.New(name).Option("missingkey=zero").Parse(text)
	if err != nil {
		return "", fmt.Errorf("email %s template: %v", name, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("email %s template: %v", name, err)
	}
	return b.String(), nil
}
