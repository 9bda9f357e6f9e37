package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	_ "github.com/tollgate/tollgate/caddymodule"
	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// upstream records what reached it.
type upstream struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	leaked  []string // key headers that reached upstream
	users   map[string]int
	whoSeen map[string]int
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{users: map[string]int{}, whoSeen: map[string]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		for _, h := range []string{"Authorization", "X-Api-Key"} {
			if v := r.Header.Get(h); v != "" {
				u.leaked = append(u.leaked, h+": "+v)
			}
		}
		u.users[r.Header.Get("X-Tollgate-User")+"/"+r.Header.Get("X-Tollgate-Project")]++
		u.whoSeen[r.Header.Get("X-Who")]++
		u.mu.Unlock()
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// startGateway loads a Caddyfile into this process's Caddy. Caddy has one
// running config per process, so tests using it do not run in parallel.
func startGateway(t *testing.T, caddyfile string) {
	t.Helper()
	loadCaddyfile(t, caddyfile)
	t.Cleanup(func() { caddy.Stop() })
}

func dbURLWithSchema(t *testing.T, schema string) string {
	return withSchema(t, meteringtest.DatabaseURL(), schema)
}

// withSchema is a Postgres URL whose connections use schema.
func withSchema(t *testing.T, dbURL, schema string) string {
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// globalOptions is a test gateway's global block: no Caddy admin API, and
// the metering app on the bundle's Postgres schema and Redis prefix.
func globalOptions(t *testing.T, b *meteringtest.Bundle, redisURL, consumer string) string {
	return fmt.Sprintf(`{
	admin off
	metering {
		redis %s
		postgres "%s"
		key_pepper test-pepper
		redis_prefix %s
		redis_shards %d
		reconciler_consumer %s
	}
}
`, redisURL, dbURLWithSchema(t, b.Schema), b.Prefix, max(b.Config.RedisShards, 1), consumer)
}

// adminEngine is a test's own engine over the bundle's Postgres and the
// Redis client newClient makes, fenced as a gateway's is (newClient gets
// the fence's OnConnect), and verified: for a gateway whose Redis is not
// the bundle's.
func adminEngine(t *testing.T, b *meteringtest.Bundle, newClient func(onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient) *metering.Engine {
	t.Helper()
	// The bundle's shards: the engine below is built with its config.
	fence, err := metering.NewRedisFence(b.Prefix, b.Config.RedisShards)
	require.NoError(t, err)
	rdb := newClient(fence.OnConnect)
	t.Cleanup(func() { rdb.Close() })
	cfg := b.Config
	cfg.Fence = fence
	e, err := metering.NewEngine(rdb, b.DB, cfg)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	require.NoError(t, e.VerifyRedis(context.Background()))
	return e
}

func gatewayConfig(t *testing.T, b *meteringtest.Bundle, listen, upstreamAddr, redisURL string) string {
	return globalOptions(t, b, redisURL, "test") + fmt.Sprintf(`http://%s {
	handle /admin/v1/* {
		metering_admin {
			token admin-secret ops admin
		}
	}
	handle {
		metering
		reverse_proxy %s {
			header_up X-Who {http.metering.user}
		}
	}
}`, listen, upstreamAddr)
}

type gateway struct {
	base   string
	client *http.Client
}

func (g gateway) do(t *testing.T, method, path, key string) (*http.Response, string) {
	req, err := http.NewRequest(method, g.base+path, nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := g.client.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestGatewayEndToEnd(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	up := newUpstream(t)
	listen := freePort(t)
	startGateway(t, gatewayConfig(t, b, listen, up.Listener.Addr().String(), meteringtest.RedisURL()))
	g := gateway{base: "http://" + listen, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}}

	_, err := b.Engine.CreateProject(ctx, "test", metering.ProjectSpec{Name: "school"})
	require.NoError(t, err)
	_, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", Project: "school", InitialCredits: 200 * metering.Micro})
	require.NoError(t, err)

	t.Run("exact admission under 500 concurrent requests", func(t *testing.T) {
		var ok, refused, other atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 500; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", g.base+"/v1/models", nil)
				req.Header.Set("X-API-Key", key)
				resp, err := g.client.Do(req)
				if err != nil {
					other.Add(1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
				case 402:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		require.Equal(t, int64(200), ok.Load())
		require.Equal(t, int64(300), refused.Load())
		require.Zero(t, other.Load())
		require.Equal(t, int64(200), up.hits.Load(), "only paid requests reach upstream")
		v, err := b.Engine.GetUser(ctx, "ann")
		require.NoError(t, err)
		require.Equal(t, metering.Credits(0), v.Live.Effective)
		require.Equal(t, metering.Credits(0), v.Live.Awarded)
	})

	t.Run("key never reaches upstream; identity headers and placeholders do", func(t *testing.T) {
		up.mu.Lock()
		defer up.mu.Unlock()
		require.Empty(t, up.leaked)
		require.Equal(t, map[string]int{"ann/school": 200}, up.users)
		require.Equal(t, map[string]int{"ann": 200}, up.whoSeen)
	})

	t.Run("402 reports effective credits", func(t *testing.T) {
		resp, body := g.do(t, "GET", "/x", key)
		require.Equal(t, 402, resp.StatusCode)
		var e struct {
			Error struct {
				Code             string           `json:"code"`
				EffectiveCredits metering.Credits `json:"effective_credits"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &e), body)
		require.Equal(t, "insufficient_credits", e.Error.Code)
		require.Equal(t, metering.Credits(0), e.Error.EffectiveCredits)
	})

	_, err = b.Engine.AdjustCredits(ctx, "test", "ann", metering.BucketAwarded, 10*metering.Micro, "top up")
	require.NoError(t, err)

	t.Run("remaining credits header", func(t *testing.T) {
		resp, _ := g.do(t, "GET", "/x", key)
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, "9", resp.Header.Get("X-Credits-Remaining"))
	})

	t.Run("every key failure is the same 401", func(t *testing.T) {
		unknown, _ := metering.NewAPIKey()
		bodies := map[string]bool{}
		// The real key with its last character changed (to one it is not).
		last := "x"
		if strings.HasSuffix(key, last) {
			last = "y"
		}
		for _, k := range []string{"", "garbage", unknown, key[:len(key)-1] + last} {
			resp, body := g.do(t, "GET", "/x", k)
			require.Equal(t, 401, resp.StatusCode, k)
			bodies[body] = true
		}
		require.Len(t, bodies, 1)
		for b := range bodies {
			require.Contains(t, b, `"code":"invalid_api_key"`)
		}
	})

	t.Run("rotation and deactivation act on the next request", func(t *testing.T) {
		newKey, err := b.Engine.RotateKey(ctx, "test", "ann")
		require.NoError(t, err)
		resp, _ := g.do(t, "GET", "/x", key)
		require.Equal(t, 401, resp.StatusCode, "old key after rotation")
		resp, _ = g.do(t, "GET", "/x", newKey)
		require.Equal(t, 200, resp.StatusCode, "new key")

		_, err = b.Engine.SetUserActive(ctx, "test", "ann", false)
		require.NoError(t, err)
		resp, _ = g.do(t, "GET", "/x", newKey)
		require.Equal(t, 401, resp.StatusCode, "deactivated")
		_, err = b.Engine.SetUserActive(ctx, "test", "ann", true)
		require.NoError(t, err)
		resp, _ = g.do(t, "GET", "/x", newKey)
		require.Equal(t, 200, resp.StatusCode, "reactivated")
	})

	t.Run("admin API is mounted", func(t *testing.T) {
		resp, body := g.do(t, "GET", "/admin/v1/health", "")
		require.Equal(t, 200, resp.StatusCode, body)
		resp, _ = g.do(t, "GET", "/admin/v1/users/ann", "")
		require.Equal(t, 401, resp.StatusCode)
		resp, body = g.do(t, "GET", "/admin/v1/users/ann", "admin-secret")
		require.Equal(t, 200, resp.StatusCode, body)
		require.Contains(t, body, `"username":"ann"`)
	})

	// The fixed-cost route admits from credit leases: the usage events of
	// admitted requests reach the stream with the lease's next flush (every
	// 100 ms), so the count is awaited; it must reach exactly this.
	var usage int
	require.Eventually(t, func() bool {
		b.Drain(t)
		require.NoError(t, b.DB.QueryRow(ctx, `SELECT count(*) FROM events WHERE kind = 'usage'`).Scan(&usage))
		return usage >= 200+1+2
	}, time.Minute, 20*time.Millisecond, "usage events recorded: %d", usage)
	require.Equal(t, 200+1+2, usage)
	b.AssertConsistent(t)
}

func TestGatewayFailsClosedWithoutRedis(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	up := newUpstream(t)
	listen := freePort(t)
	dead := "redis://" + freePort(t) + "/0" // nothing listens there
	startGateway(t, gatewayConfig(t, b, listen, up.Listener.Addr().String(), dead))
	g := gateway{base: "http://" + listen, client: http.DefaultClient}
	key, _ := metering.NewAPIKey()
	resp, body := g.do(t, "POST", "/v1/chat/completions", key)
	require.Equal(t, 503, resp.StatusCode)
	require.True(t, strings.Contains(body, `"code":"metering_unavailable"`), body)
	require.Zero(t, up.hits.Load(), "nothing reaches upstream unmetered")
	resp, body = g.do(t, "GET", "/admin/v1/health", "")
	require.Equal(t, 503, resp.StatusCode, body)
	require.Contains(t, body, `"redis"`)
}
