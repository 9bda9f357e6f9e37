package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// apiError is an answer of the admin API that is not a success: its
// status and the error object it carries. The message is the API's
// sentence, shown to the admin as it is.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// call makes an API request with the session's token and decodes a
// successful answer's JSON into out (when out is not nil). body, when not
// nil, is sent as JSON. An unsuccessful answer is returned as *apiError.
func (c *Console) call(r *http.Request, s *session, method, path string, query url.Values, body, out any) error {
	return c.callAs(r, s.secret, method, path, query, body, out)
}

// callAs is call with an explicit token ("" for the API's public routes).
func (c *Console) callAs(r *http.Request, secret, method, path string, query url.Values, body, out any) error {
	var reader io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case rawBody:
		reader, contentType = bytes.NewReader(b.data), b.contentType
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		reader, contentType = bytes.NewReader(data), "application/json"
	}
	req, err := c.apiRequest(r.Context(), r, secret, method, path, query, reader)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := &bufferedResponse{header: http.Header{}}
	c.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		return decodeAPIError(rec.status, rec.body.Bytes())
	}
	if out == nil || rec.status == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("console: decoding the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// rawBody is a request body sent as it is (a CSV upload).
type rawBody struct {
	data        []byte
	contentType string
}

func (c *Console) apiRequest(ctx context.Context, r *http.Request, secret, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	u := &url.URL{Path: c.cfg.APIBasePath + path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = r.RemoteAddr
	req.TLS = r.TLS
	req.Host = r.Host
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	return req, nil
}

func decodeAPIError(status int, body []byte) *apiError {
	var env struct {
		Error apiError `json:"error"`
	}
	e := &apiError{}
	if json.Unmarshal(body, &env) == nil && env.Error.Code != "" {
		*e = env.Error
	} else {
		e.Code, e.Message = "internal", strings.TrimSpace(string(body))
	}
	e.Status = status
	return e
}

// bufferedResponse collects an API answer in memory. API answers the
// console reads are a page of a list at most; downloads use stream.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// stream sends an API download (CSV) to the browser as it is written, as
// an attachment named filename. An API error is rendered as an error page
// instead, since nothing has been sent yet when the API decides.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, s *session, path string, query url.Values, filename string) error {
	req, err := c.apiRequest(r.Context(), r, s.secret, http.MethodGet, path, query, nil)
	if err != nil {
		return err
	}
	sw := &streamWriter{w: w, filename: filename}
	c.api.ServeHTTP(sw, req)
	if sw.failed != nil {
		return decodeAPIError(sw.failed.status, sw.failed.body.Bytes())
	}
	return nil
}

// streamWriter passes a successful answer through to the browser and
// holds back an unsuccessful one for an error page.
type streamWriter struct {
	w        http.ResponseWriter
	filename string
	header   http.Header
	started  bool
	failed   *bufferedResponse
}

func (s *streamWriter) Header() http.Header {
	if s.header == nil {
		s.header = http.Header{}
	}
	return s.header
}

func (s *streamWriter) WriteHeader(code int) {
	if s.started || s.failed != nil {
		return
	}
	if code >= 300 {
		s.failed = &bufferedResponse{header: s.header, status: code}
		return
	}
	s.started = true
	h := s.w.Header()
	if ct := s.header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", s.filename))
	s.w.WriteHeader(code)
}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	if s.failed != nil {
		return s.failed.body.Write(p)
	}
	return s.w.Write(p)
}

// Flush lets the API flush a long export through to the browser.
func (s *streamWriter) Flush() {
	if f, ok := s.w.(http.Flusher); ok && s.started {
		f.Flush()
	}
}
