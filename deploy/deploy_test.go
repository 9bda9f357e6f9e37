// Package deploy holds the production examples (Caddyfile, systemd unit);
// its tests run them: the Caddyfile adapted, validated and served for real
// with test certificates on loopback, the unit checked by systemd.
package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/stretchr/testify/require"

	_ "github.com/tollgate/tollgate/caddymodule"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// gateway is deploy/Caddyfile running in this process.
type gateway struct {
	dir         string // logs, certificates, the admin socket
	public      string // https://localhost:port
	admin       string // https://localhost:port/admin/v1
	adminToken  string
	http        *http.Client
	configJSON  []byte // as started (with the test's changes)
	adaptedJSON []byte // as adapted from the file
}

func randomSecret(t *testing.T, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	require.NoError(t, err)
	return port
}

// fakeUpstream answers /v1/models as an OpenAI-style upstream does.
func fakeUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-Api-Key") != "" {
			http.Error(w, "the client's key reached the upstream", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"demo","object":"model"}]}`)
	}))
	t.Cleanup(up.Close)
	return up
}

// adapt reads deploy/Caddyfile as `tollgate adapt` does.
func adapt(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("Caddyfile")
	require.NoError(t, err)
	cfg, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile"})
	require.NoError(t, err)
	require.Empty(t, warn, "caddy adapt warnings")
	return cfg
}

// startGateway sets the environment the unit's EnvironmentFile would, and
// loads deploy/Caddyfile with three test-only changes: certificates kept in
// the test's directory, Caddy's local CA not installed into the system's
// trust store, and the HTTP->HTTPS redirect on a free port instead of 80.
// Caddy runs one configuration per process: the tests here do not run in
// parallel.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	b := meteringtest.New(t, meteringtest.Options{})
	up := fakeUpstream(t)
	// Short: a Unix socket's path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "tgdeploy")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	g := &gateway{dir: dir, adminToken: randomSecret(t, 24)}
	publicPort, adminPort := freePort(t), freePort(t)
	g.public = "https://localhost:" + publicPort
	g.admin = "https://localhost:" + adminPort + "/admin/v1"

	dbURL, err := url.Parse(meteringtest.DatabaseURL())
	require.NoError(t, err)
	q := dbURL.Query()
	q.Set("search_path", b.Schema)
	dbURL.RawQuery = q.Encode()
	kek := make([]byte, 32)
	_, err = rand.Read(kek)
	require.NoError(t, err)
	for k, v := range map[string]string{
		"TOLLGATE_PUBLIC_SITE":        "localhost:" + publicPort,
		"TOLLGATE_BIND":               "127.0.0.1",
		"TOLLGATE_TLS":                "internal",
		"TOLLGATE_ADMIN_SITE":         "localhost:" + adminPort,
		"TOLLGATE_ADMIN_BIND":         "127.0.0.1",
		"TOLLGATE_ADMIN_TLS":          "internal",
		"TOLLGATE_UPSTREAM":           up.URL,
		"TOLLGATE_REDIS_URL":          meteringtest.RedisURL(),
		"TOLLGATE_DATABASE_URL":       dbURL.String(),
		"TOLLGATE_REDIS_PREFIX":       b.Prefix,
		"TOLLGATE_KEY_PEPPER":         randomSecret(t, 32),
		"TOLLGATE_KEY_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(kek),
		"TOLLGATE_ADMIN_TOKEN":        g.adminToken,
		"TOLLGATE_VIEWER_TOKEN":       "",
		"TOLLGATE_RUN_DIR":            dir,
		"TOLLGATE_LOG_DIR":            dir,
	} {
		t.Setenv(k, v)
	}
	g.adaptedJSON = adapt(t)

	var doc map[string]any
	require.NoError(t, json.Unmarshal(g.adaptedJSON, &doc))
	doc["storage"] = map[string]any{"module": "file_system", "root": filepath.Join(dir, "data")}
	apps := doc["apps"].(map[string]any)
	apps["pki"] = map[string]any{"certificate_authorities": map[string]any{"local": map[string]any{"install_trust": false}}}
	apps["http"].(map[string]any)["http_port"] = json.Number(freePort(t))
	g.configJSON, err = json.Marshal(doc)
	require.NoError(t, err)

	// `tollgate validate`: every module provisioned (Redis and PostgreSQL
	// reached), nothing started.
	var cfg caddy.Config
	require.NoError(t, json.Unmarshal(g.configJSON, &cfg))
	require.NoError(t, caddy.Validate(&cfg))

	require.NoError(t, caddy.Load(g.configJSON, true))
	t.Cleanup(func() { caddy.Stop() })

	// Trust the gateway's own CA, and reach "localhost" on 127.0.0.1,
	// where the sites listen.
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		},
		TLSClientConfig: &tls.Config{},
	}
	g.http = &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	rootFile := filepath.Join(dir, "data", "pki", "authorities", "local", "root.crt")
	eventually(t, "Caddy's local CA root certificate to be written", func() bool {
		pem, err := os.ReadFile(rootFile)
		if err != nil {
			return false
		}
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(pem))
		tr.TLSClientConfig.RootCAs = pool
		return true
	})
	eventually(t, "both sites to answer over TLS", func() bool {
		for _, u := range []string{g.public + "/v1/models", g.admin + "/health"} {
			resp, err := g.http.Get(u)
			if err != nil {
				return false
			}
			resp.Body.Close()
		}
		return true
	})
	return g
}

// eventually polls cond until it holds, for a bounded time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends one request and returns the status, headers and body.
func (g *gateway) do(t *testing.T, method, u string, header http.Header, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, raw
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func TestProductionCaddyfile(t *testing.T) {
	g := startGateway(t)

	// Secrets are read when the modules start, never written into the
	// configuration (`tollgate adapt` output, Caddy's config API).
	for _, name := range []string{"TOLLGATE_ADMIN_TOKEN", "TOLLGATE_KEY_PEPPER", "TOLLGATE_KEY_ENCRYPTION_KEY", "TOLLGATE_DATABASE_URL"} {
		require.NotContains(t, string(g.adaptedJSON), os.Getenv(name), name)
		require.Contains(t, string(g.adaptedJSON), "{env."+name+"}", name)
	}

	// Caddy's admin endpoint is a Unix socket only its owner may open.
	sock := filepath.Join(g.dir, "caddy-admin.sock")
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket|0o600, fi.Mode()&(os.ModeSocket|os.ModePerm))

	// An admin request on the admin site creates a user and its key.
	status, _, body := g.do(t, "POST", g.admin+"/users", bearer(g.adminToken), `{"username":"ann","initial_credits":10}`)
	require.Equal(t, http.StatusCreated, status, string(body))
	var created struct {
		APIKey string `json:"api_key"`
	}
	require.NoError(t, json.Unmarshal(body, &created))
	key := created.APIKey
	require.True(t, strings.HasPrefix(key, "tg_"), key)

	// Metered requests on the public site, with either key header.
	status, hdr, body := g.do(t, "GET", g.public+"/v1/models", http.Header{"X-Api-Key": {key}}, "")
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "9", hdr.Get("X-Credits-Remaining"))
	status, hdr, body = g.do(t, "GET", g.public+"/v1/models", bearer(key), "")
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "8", hdr.Get("X-Credits-Remaining"))
	status, _, _ = g.do(t, "GET", g.public+"/v1/models", bearer("tg_"+strings.Repeat("A", 49)), "")
	require.Equal(t, http.StatusUnauthorized, status)
	status, _, _ = g.do(t, "POST", g.public+"/v1/batches", bearer(key), `{}`)
	require.Equal(t, http.StatusForbidden, status)

	// The admin API and console are not on the public site, even with the token.
	status, _, body = g.do(t, "GET", g.public+"/admin/v1/users/ann", bearer(g.adminToken), "")
	require.Equal(t, http.StatusNotFound, status, string(body))
	require.Contains(t, string(body), "not served on this address")
	status, _, _ = g.do(t, "GET", g.public+"/admin/", nil, "")
	require.Equal(t, http.StatusNotFound, status)
	// The admin site sends anything else to the console.
	status, hdr, _ = g.do(t, "GET", strings.TrimSuffix(g.admin, "/admin/v1")+"/", nil, "")
	require.Equal(t, http.StatusFound, status)
	require.Equal(t, "/admin/", hdr.Get("Location"))

	// The admin site serves the metrics, the public one does not.
	site := strings.TrimSuffix(g.admin, "/admin/v1")
	status, _, body = g.do(t, "GET", site+"/metrics", nil, "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `tollgate_requests_total{outcome="charged"} 2`)
	status, _, _ = g.do(t, "GET", g.public+"/metrics", nil, "")
	require.NotEqual(t, http.StatusOK, status)

	// An invite link points at the public site, which serves its page.
	status, _, body = g.do(t, "POST", g.admin+"/users/ann/invite", bearer(g.adminToken), "")
	require.Equal(t, http.StatusCreated, status, string(body))
	var invite struct {
		URL string `json:"url"`
	}
	require.NoError(t, json.Unmarshal(body, &invite))
	require.True(t, strings.HasPrefix(invite.URL, g.public+"/claim/tgi_"), invite.URL)
	inviteToken := strings.TrimPrefix(invite.URL, g.public+"/claim/")
	status, _, body = g.do(t, "GET", invite.URL, nil, "")
	require.Equal(t, http.StatusOK, status, string(body))

	// A console request with a session cookie.
	cookie := randomSecret(t, 16)
	status, _, _ = g.do(t, "GET", strings.TrimSuffix(g.admin, "/v1")+"/", http.Header{"Cookie": {"tollgate_session=" + cookie}}, "")
	require.Less(t, status, 500)

	// Both access logs hold the requests, and not one secret.
	publicLog := filepath.Join(g.dir, "access.log")
	adminLog := filepath.Join(g.dir, "admin-access.log")
	eventually(t, "the access logs to hold every request", func() bool {
		pub, _ := os.ReadFile(publicLog)
		adm, _ := os.ReadFile(adminLog)
		return bytes.Contains(pub, []byte(`"X-Credits-Remaining":["8"]`)) && bytes.Contains(pub, []byte(`"uri":"/claim/[redacted]"`)) &&
			bytes.Contains(adm, []byte(`"uri":"/admin/v1/users/ann/invite"`)) && bytes.Contains(adm, []byte(`"uri":"/admin/"`))
	})
	for _, f := range []string{publicLog, adminLog} {
		logs, err := os.ReadFile(f)
		require.NoError(t, err)
		for name, secret := range map[string]string{"API key": key, "API key body": key[len("tg_"):],
			"admin token": g.adminToken, "invite token": inviteToken, "invite token body": inviteToken[len("tgi_"):], "session cookie": cookie} {
			require.NotContains(t, string(logs), secret, "%s in %s", name, f)
		}
		require.NotContains(t, string(logs), `"X-Api-Key"`, f)
		require.NotContains(t, string(logs), `"Authorization"`, f)
		require.NotContains(t, string(logs), `"Cookie"`, f)
	}

	// `tollgate reload` (the unit's ExecReload) posts the configuration to
	// the admin socket; the gateway goes on serving with it.
	reload := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	req, err := http.NewRequest("POST", "http://localhost/load", bytes.NewReader(g.configJSON))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cache-Control", "must-revalidate") // --force: load even if unchanged
	resp, err := reload.Do(req)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	status, hdr, body = g.do(t, "GET", g.public+"/v1/models", bearer(key), "")
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "7", hdr.Get("X-Credits-Remaining"))
}
