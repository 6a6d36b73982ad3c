package connectortest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/oasdiff/yaml"
)

// ErrNoSpecs means the shared specs folder is not beside the repository.
var ErrNoSpecs = errors.New("vendor specs not found")

// SpecsDir finds shared/specs: $KILN_SPECS if set, else ../shared/specs
// from the directory holding go.mod (the workspace layout).
func SpecsDir() (string, error) {
	if d := os.Getenv("KILN_SPECS"); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return "", fmt.Errorf("%w: KILN_SPECS=%s is not a directory", ErrNoSpecs, d)
		}
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			specs := filepath.Join(dir, "..", "shared", "specs")
			if st, err := os.Stat(specs); err == nil && st.IsDir() {
				return specs, nil
			}
			return "", fmt.Errorf("%w: %s is absent (clone the shared folder beside the repository or set KILN_SPECS)", ErrNoSpecs, specs)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the working directory", ErrNoSpecs)
		}
		dir = parent
	}
}

// Validator checks one request a connector sent.
type Validator interface {
	Validate(r *http.Request, body []byte) error
}

// ResponseValidator is a Validator that also checks the fake's answers.
type ResponseValidator interface {
	ValidateResponse(r *http.Request, reqBody []byte, status int, h http.Header, body []byte) error
}

// OpenAPI validates requests against an OpenAPI 3 document with
// kin-openapi's openapi3filter. Requests are matched on method and path
// only: the document's servers are replaced by one fake server.
type OpenAPI struct {
	File   string
	router routers.Router
}

const fakeHost = "http://fake.test"

var (
	loadMu sync.Mutex
	loaded = map[string]*OpenAPI{}
)

// SpecOptions says how to load a spec file.
type SpecOptions struct {
	// BasePath is the path prefix the document's operations sit under on
	// the real server ("/v3" for Brevo), "" when paths are absolute.
	BasePath string
	// Operations, for Swagger 2.0 files, keeps only these operations
	// ("POST /contacts/lists/{listId}/contacts/add") before converting to
	// OpenAPI 3: kin-openapi cannot convert the whole Brevo file.
	Operations []string
}

// LoadSpec loads rel (a path under shared/specs) once per process. It
// returns an error wrapping ErrNoSpecs when the folder is absent.
func LoadSpec(rel string, opt SpecOptions) (*OpenAPI, error) {
	dir, err := SpecsDir()
	if err != nil {
		return nil, err
	}
	loadMu.Lock()
	defer loadMu.Unlock()
	if v, ok := loaded[rel]; ok {
		return v, nil
	}
	path := filepath.Join(dir, filepath.FromSlash(rel))
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	var doc *openapi3.T
	if isSwagger2(data) {
		doc, err = convertSwagger2(data, opt.Operations)
	} else {
		loader := openapi3.NewLoader()
		doc, err = loader.LoadFromData(data)
	}
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", rel, err)
	}
	// Do not gate on doc.Validate(): the Klaviyo and Intercom files fail it
	// for schemas we never use (see shared/specs/README.md).
	doc.Servers = openapi3.Servers{{URL: fakeHost + opt.BasePath}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("routing %s: %w", rel, err)
	}
	v := &OpenAPI{File: rel, router: router}
	loaded[rel] = v
	return v, nil
}

// isSwagger2 reads the top-level "swagger" key: it may sit anywhere in a
// JSON file (Iterable's is at the end).
func isSwagger2(data []byte) bool {
	if json.Valid(data) {
		var v struct {
			Swagger string `json:"swagger"`
		}
		return json.Unmarshal(data, &v) == nil && strings.HasPrefix(v.Swagger, "2.")
	}
	return regexp.MustCompile(`(?m)^swagger:\s*["']?2\.`).Match(data)
}

// convertSwagger2 converts a Swagger 2.0 document to OpenAPI 3 with
// openapi2conv. When ops is not empty it first drops every other operation,
// so definitions the converter cannot handle (Brevo's createdBatchId, used
// as a response object elsewhere) are never reached; the definitions stay
// whole so the kept operations' $refs resolve.
func convertSwagger2(data []byte, ops []string) (*openapi3.T, error) {
	if !json.Valid(data) {
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("swagger 2.0 YAML: %w", err)
		}
		data = j
	}
	var doc2 openapi2.T
	if err := json.Unmarshal(data, &doc2); err != nil {
		return nil, fmt.Errorf("swagger 2.0: %w", err)
	}
	if len(ops) > 0 {
		keep := map[string]map[string]bool{}
		for _, op := range ops {
			method, path, ok := strings.Cut(op, " ")
			if !ok {
				return nil, fmt.Errorf("operation %q: want \"METHOD /path\"", op)
			}
			if keep[path] == nil {
				keep[path] = map[string]bool{}
			}
			keep[path][strings.ToUpper(method)] = true
		}
		paths := map[string]*openapi2.PathItem{}
		for path, item := range doc2.Paths {
			methods, ok := keep[path]
			if !ok {
				continue
			}
			for method := range item.Operations() {
				if !methods[method] {
					item.SetOperation(method, nil)
				}
			}
			paths[path] = item
			delete(keep, path)
		}
		for path := range keep {
			return nil, fmt.Errorf("swagger 2.0: path %s not in the document", path)
		}
		doc2.Paths = paths
		// Shared responses may reference schemas as response objects,
		// which the converter rejects; the kept operations inline theirs.
		doc2.Responses = nil
	}
	return openapi2conv.ToV3(&doc2)
}

// rebase points a copy of r at the fake host the router knows.
func rebase(r *http.Request, body []byte) *http.Request {
	req := r.Clone(context.Background())
	u, _ := url.Parse(fakeHost)
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	req.URL, req.Host, req.RequestURI = u, u.Host, ""
	req.Body = io.NopCloser(bytes.NewReader(body))
	return req
}

// ValidateResponse checks a fake's answer against the responses the
// operation documents (status, headers, body), so the fakes are held to the
// vendor's spec too. Undocumented statuses pass: most specs document only
// some error codes. Requests that match no operation are reported by
// Validate, not here.
func (v *OpenAPI) ValidateResponse(r *http.Request, reqBody []byte, status int, h http.Header, body []byte) error {
	req := rebase(r, reqBody)
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return nil
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: checkCredentials}}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: h,
		Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{MultiError: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		return fmt.Errorf("%s %s answered %d (%s in %s): %v", r.Method, r.URL.Path, status, route.Operation.OperationID, v.File, err)
	}
	return nil
}

// Validate checks method, path, parameters, body and the presence of the
// credentials the operation's security scheme names.
func (v *OpenAPI) Validate(r *http.Request, body []byte) error {
	req := rebase(r, body)
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("%s %s: no such operation in %s: %v", r.Method, r.URL.Path, v.File, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: checkCredentials, MultiError: true},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s (%s in %s): %v", r.Method, r.URL.Path, route.Operation.OperationID, v.File, err)
	}
	return nil
}

// checkCredentials passes when the request carries the credential the
// scheme describes (we cannot know the vendor's keys, only their place).
func checkCredentials(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	r := in.RequestValidationInput.Request
	switch s.Type {
	case "http":
		want := strings.ToLower(s.Scheme)
		got, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if strings.ToLower(got) != want {
			return fmt.Errorf("want Authorization: %s ..., got %q", s.Scheme, got)
		}
	case "apiKey":
		var v string
		switch s.In {
		case "header":
			v = r.Header.Get(s.Name)
		case "query":
			v = r.URL.Query().Get(s.Name)
		case "cookie":
			if c, err := r.Cookie(s.Name); err == nil {
				v = c.Value
			}
		}
		if v == "" {
			return fmt.Errorf("missing %s %s", s.In, s.Name)
		}
	default:
		return fmt.Errorf("unsupported security scheme type %q", s.Type)
	}
	return nil
}

func (v *OpenAPI) matches(r *http.Request) bool {
	req := r.Clone(context.Background())
	u, _ := url.Parse(fakeHost)
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	req.URL = u
	_, _, err := v.router.FindRoute(req)
	return err == nil
}

// Multi validates against whichever of several spec files (one vendor's
// API split by area, like SendGrid's) has the operation.
type Multi []*OpenAPI

// Validate implements Validator.
func (m Multi) Validate(r *http.Request, body []byte) error {
	var files []string
	for _, v := range m {
		if v.matches(r) {
			return v.Validate(r, body)
		}
		files = append(files, v.File)
	}
	return fmt.Errorf("%s %s: no such operation in %s", r.Method, r.URL.Path, strings.Join(files, ", "))
}

// ValidateResponse implements ResponseValidator.
func (m Multi) ValidateResponse(r *http.Request, reqBody []byte, status int, h http.Header, body []byte) error {
	for _, v := range m {
		if v.matches(r) {
			return v.ValidateResponse(r, reqBody, status, h, body)
		}
	}
	return nil
}

// LoadSpecs loads several files of one vendor as a Multi.
func LoadSpecs(opt SpecOptions, rel ...string) (Multi, error) {
	var m Multi
	for _, f := range rel {
		v, err := LoadSpec(f, opt)
		if err != nil {
			return nil, err
		}
		m = append(m, v)
	}
	return m, nil
}
