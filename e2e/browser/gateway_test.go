package browser

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/metering/meteringtest"
)

// The tokens the gateways accept. The quick-start Caddyfile names them
// "admin" and "viewer": those names are the actors in the audit log.
const (
	adminToken  = "browser-admin-token-0123456789abcdef"
	viewerToken = "browser-viewer-token-0123456789abcdef"
)

// stack is everything the browser tests talk to: the real tollgate and
// demo-upstream binaries, built once, with a database and a Redis prefix
// of their own. It is shared by every test (see world in main_test.go).
type stack struct {
	root     string // the repository root
	binDir   string
	dbURL    string // the stack's own database
	dbName   string
	prefix   string // the stack's own Redis key prefix
	upstream string // host:port of the demo upstream
	env      []string
	procs    []*process
	main     *gateway
	idleOnce sync.Once
	idle     *gateway
	idleErr  error
	scratch  string // temporary files: homes, logs, Caddyfiles
	mu       sync.Mutex
}

// gateway is one running tollgate.
type gateway struct {
	URL string // http://127.0.0.1:port, no trailing slash
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// startStack builds the binaries, creates the database, migrates it and
// starts the demo upstream and the gateway with the quick-start Caddyfile.
func startStack() (_ *stack, err error) {
	s := &stack{}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.root, err = filepath.Abs("../.."); err != nil {
		return nil, err
	}
	if s.scratch, err = os.MkdirTemp("", "tollgate-browser-"); err != nil {
		return nil, err
	}
	s.binDir = filepath.Join(s.scratch, "bin")
	if err := s.build(); err != nil {
		return nil, err
	}
	if err := s.createDatabase(); err != nil {
		return nil, err
	}
	s.prefix = "tollgate_browser_" + randomHex(6)
	if s.upstream, err = freeAddr(); err != nil {
		return nil, err
	}
	s.env = append(os.Environ(),
		"TOLLGATE_REDIS_URL="+meteringtest.RedisURL(),
		"TOLLGATE_DATABASE_URL="+s.dbURL,
		"TOLLGATE_REDIS_PREFIX="+s.prefix,
		"TOLLGATE_KEY_PEPPER="+randomHex(32),
		"TOLLGATE_KEY_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(randomBytes(32)),
		"TOLLGATE_ADMIN_TOKEN="+adminToken,
		"TOLLGATE_VIEWER_TOKEN="+viewerToken,
		"TOLLGATE_UPSTREAM="+s.upstream,
		"TOLLGATE_BIND=127.0.0.1",
	)
	migrate := exec.Command(filepath.Join(s.binDir, "tollgate"), "migrate")
	migrate.Env = s.env
	if out, err := migrate.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("tollgate migrate: %v\n%s", err, out)
	}
	up, err := s.start("demo-upstream", []string{"--listen", s.upstream}, s.env)
	if err != nil {
		return nil, err
	}
	if err := waitListening(s.upstream, up); err != nil {
		return nil, err
	}
	// The repository's Caddyfile itself, as `make run` serves it.
	if s.main, err = s.startGateway("main", filepath.Join(s.root, "Caddyfile")); err != nil {
		return nil, err
	}
	return s, nil
}

// build compiles cmd/tollgate and cmd/demo-upstream once for every test.
func (s *stack) build() error {
	goCmd := "go"
	if g := os.Getenv("GO"); g != "" {
		goCmd = g
	}
	for _, name := range []string{"tollgate", "demo-upstream"} {
		cmd := exec.Command(goCmd, "build", "-o", filepath.Join(s.binDir, name), "./cmd/"+name)
		cmd.Dir = s.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, out)
		}
	}
	return nil
}

// createDatabase creates tollgate_browser_<random> on the test server.
func (s *stack) createDatabase() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := meteringtest.DatabaseURL()
	u, err := url.Parse(server)
	if err != nil {
		return fmt.Errorf("TOLLGATE_TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/postgres"
	c, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("PostgreSQL at %s is not usable (%v): start it or set TOLLGATE_TEST_DATABASE_URL; `make test` starts one for you", u.Redacted(), err)
	}
	defer c.Close(ctx)
	s.dbName = "tollgate_browser_" + randomHex(6)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.dbName}.Sanitize()); err != nil {
		s.dbName = ""
		return fmt.Errorf("create the browser tests' database: %v", err)
	}
	u.Path = "/" + s.dbName
	s.dbURL = u.String()
	return nil
}

// startGateway runs tollgate with the Caddyfile at config on a free port.
// name tells the gateways apart in file names and messages.
func (s *stack) startGateway(name, config string) (*gateway, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr() // Caddy's own admin endpoint, not 2019: other gateways may run
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.scratch, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(listen)
	env := append(append([]string{}, s.env...),
		"TOLLGATE_LISTEN=:"+port,
		"CADDY_ADMIN="+adminAddr,
		"HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
	p, err := s.start("tollgate-"+name, []string{"run", "--config", config, "--adapter", "caddyfile"}, env)
	if err != nil {
		return nil, err
	}
	gw := &gateway{URL: "http://" + listen}
	if err := waitHealthy(gw.URL, p); err != nil {
		return nil, err
	}
	return gw, nil
}

// idleGateway is a second gateway on the same stores whose console ends
// sessions after 3 s unused: the quick-start Caddyfile with session_idle
// added to its metering_admin block. Started on first use.
func (s *stack) idleGateway(t *testing.T) *gateway {
	t.Helper()
	s.idleOnce.Do(func() {
		caddyfile, err := os.ReadFile(filepath.Join(s.root, "Caddyfile"))
		if err != nil {
			s.idleErr = err
			return
		}
		const block = "metering_admin {"
		if strings.Count(string(caddyfile), block) != 1 {
			s.idleErr = fmt.Errorf("the Caddyfile does not have exactly one %q block to add session_idle to", block)
			return
		}
		text := strings.Replace(string(caddyfile), block, block+"\n\t\t\tsession_idle 3s", 1)
		config := filepath.Join(s.scratch, "Caddyfile.idle")
		if s.idleErr = os.WriteFile(config, []byte(text), 0o600); s.idleErr != nil {
			return
		}
		s.idle, s.idleErr = s.startGateway("idle", config)
	})
	if s.idleErr != nil {
		t.Fatalf("start the gateway with session_idle 3s: %v", s.idleErr)
	}
	return s.idle
}

// start runs one of the built binaries in the background.
func (s *stack) start(name string, args, env []string) (*process, error) {
	bin := "tollgate"
	if name == "demo-upstream" {
		bin = name
	}
	p := &process{name: name, out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(s.binDir, bin), args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	dieWithTests(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// stop ends every process, drops the database and removes the Redis keys
// under the stack's prefix (only those).
func (s *stack) stop() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		stopProcess(procs[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.dbName != "" {
		if u, err := url.Parse(meteringtest.DatabaseURL()); err == nil {
			u.Path = "/postgres"
			if c, err := pgx.Connect(ctx, u.String()); err == nil {
				_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.dbName}.Sanitize()+" WITH (FORCE)")
				c.Close(ctx)
			}
		}
	}
	if s.prefix != "" {
		if opt, err := redis.ParseURL(meteringtest.RedisURL()); err == nil {
			c := redis.NewClient(opt)
			iter := c.Scan(ctx, 0, `\{`+s.prefix+`\}*`, 1000).Iterator()
			var keys []string
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if len(keys) > 0 {
				c.Del(ctx, keys...)
			}
			c.Close()
		}
	}
	if s.scratch != "" && os.Getenv("TOLLGATE_KEEP_BROWSER_SCRATCH") == "" {
		_ = os.RemoveAll(s.scratch)
	}
}

var errNoStack = errors.New("the gateway stack did not start")
