package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// Defect 5: no API key in any line the real binary writes, with Caddy's
// default logging (the error logger fires: the upstream is down) and with
// `log` (access logs), whichever header carries the key.
func TestNoKeyInTheGatewaysOutput(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	_, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 100 * metering.Micro})
	require.NoError(t, err)
	unknown, err := metering.NewAPIKey()
	require.NoError(t, err)

	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "tollgate")
	out, err := exec.Command(goCmd, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	db, err := url.Parse(meteringtest.DatabaseURL())
	require.NoError(t, err)
	q := db.Query()
	q.Set("search_path", b.Schema)
	db.RawQuery = q.Encode()
	withLog, defaultLog, down := freeAddr(t), freeAddr(t), freeAddr(t) // nothing listens on down
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`{
	admin off
	metering {
		redis %s
		postgres "%s"
		key_pepper test-pepper
		redis_prefix %s
		reconciler_consumer logs
	}
}
http://%s {
	log
	metering
	reverse_proxy %s
}
http://%s {
	metering
	reverse_proxy %s
}
`, meteringtest.RedisURL(), db, b.Prefix, withLog, down, defaultLog, down)), 0o600))

	gw := exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	gw.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	gw.Stdout, gw.Stderr = &stdout, &stderr
	require.NoError(t, gw.Start())
	exited := make(chan struct{})
	go func() {
		_ = gw.Wait() // returns once the scrubber has closed the output too
		close(exited)
	}()
	t.Cleanup(func() {
		_ = gw.Process.Kill()
		<-exited
	})
	for _, addr := range []string{withLog, defaultLog} {
		require.Eventually(t, func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, 60*time.Second, 20*time.Millisecond, "the gateway never listened on %s", addr)
	}

	for _, addr := range []string{withLog, defaultLog} {
		for _, k := range []string{key, unknown} {
			for _, header := range []string{"X-Api-Key", "Authorization"} {
				req, err := http.NewRequest("GET", "http://"+addr+"/v1/models?key="+k, nil)
				require.NoError(t, err)
				if header == "Authorization" {
					req.Header.Set(header, "Bearer "+k)
				} else {
					req.Header.Set(header, k)
				}
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				want := 502 // metered, then the upstream is down: Caddy's error log
				if k == unknown {
					want = 401
				}
				require.Equal(t, want, resp.StatusCode)
			}
		}
	}

	require.NoError(t, gw.Process.Signal(syscall.SIGINT))
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("the gateway did not exit after SIGINT")
	}
	all := stdout.String() + stderr.String()
	for _, k := range []string{key, unknown} {
		require.NotContains(t, all, k)
		require.NotContains(t, all, k[len("tg_"):], "the key without its prefix")
	}
	// The lines that would have carried the keys are there, redacted.
	require.Contains(t, all, `"logger":"http.log.error"`, "the default error log fired")
	require.Contains(t, all, `"logger":"http.log.access`, "the access log fired")
	require.Contains(t, all, `"X-Api-Key":["`+key[:7]+`[redacted]"]`)
	require.Contains(t, all, `key=`+unknown[:7]+`[redacted]`)
	require.Contains(t, all, "shutdown complete", "the last line is not lost")
	require.True(t, strings.Count(all, "[redacted]") >= 8, all)
}
