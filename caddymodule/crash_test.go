package caddymodule_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// goTool finds the go command that runs this test.
func goTool(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	_, err := os.Stat(p)
	require.NoError(t, err, "no go command to build bin/tollgate with")
	return p
}

// gatewayProcess is bin/tollgate running a Caddyfile in a process of its
// own, for tests that kill it.
type gatewayProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // how it exited, once done
}

// startGatewayProcess builds the tollgate command, runs it with the
// Caddyfile and extra environment (NAME=value), and waits until it
// listens on listen. It is killed when the test ends, if still running.
func startGatewayProcess(t *testing.T, listen, caddyfile string, env ...string) *gatewayProcess {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tollgate")
	build := exec.Command(goTool(t), "build", "-o", bin, "../cmd/tollgate")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	require.NoError(t, os.WriteFile(cfg, []byte(caddyfile), 0o600))
	g := &gatewayProcess{cmd: exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile"), done: make(chan struct{})}
	g.cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), env...)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	require.NoError(t, err)
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	require.NoError(t, g.cmd.Start())
	go func() {
		g.err = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.done
	})
	// Ready when Caddy itself answers there: a bare dial could reach
	// another test's server that took the port after freePort let it go.
	require.Eventually(t, func() bool {
		select {
		case <-g.done:
			return true
		default:
		}
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.Header.Get("Server") == "Caddy"
	}, 60*time.Second, 20*time.Millisecond, "the gateway never answered on %s", listen)
	select {
	case <-g.done:
		t.Fatalf("the gateway exited at start: %v (log: %s)", g.err, logFile.Name())
	default:
	}
	return g
}

// kill ends the process at once (SIGKILL) and waits for it.
func (g *gatewayProcess) kill(t *testing.T) {
	require.NoError(t, g.cmd.Process.Kill())
	<-g.done
}

// A gateway killed (SIGKILL) with streams in flight leaves reservations
// behind; once their lease ends a sweeper settles every one, and Redis and
// Postgres agree.
func TestKilledGatewayIsSwept(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	putTestPrices(t, b, "slow")
	start := 10 * metering.Micro
	ann, key, err := b.Engine.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: start})
	require.NoError(t, err)
	up := newFakeOpenAI(t)

	listen := freePort(t)
	const lease = 2 * time.Second
	gw := startGatewayProcess(t, listen, globalOptions(t, b, meteringtest.RedisURL(), "doomed")+fmt.Sprintf(`http://%s {
	metering {
		price_by model
		lease %s
	}
	reverse_proxy %s
}`, listen, lease, up.Listener.Addr()))

	const streams = 5
	client := &http.Client{}
	w := &meteredWorld{b: b, up: up, base: "http://" + listen, http: client}
	c := w.client(key)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A stream that ends before the upstream saw it fails the test with
	// its error (rather than leaving it waiting for the upstream).
	failed := make(chan error, streams)
	for range streams {
		go func() {
			s := c.Chat.Completions.NewStreaming(sctx, chatParams("slow", 50))
			for s.Next() {
			}
			failed <- fmt.Errorf("a stream ended: %v", s.Err())
		}()
	}
	for range streams {
		select {
		case <-up.slowStarted:
		case err := <-failed:
			t.Fatalf("before the upstream had all %d streams: %v", streams, err)
		case <-time.After(2 * time.Minute):
			t.Fatalf("the upstream did not get all %d streams in 2 minutes", streams)
		}
	}
	reservation := costOf(chatInput(t, "slow", 50, true), 50)
	require.Equal(t, start-streams*reservation, w.effective(t, "ann"))
	// Let the doomed gateway's reconciler acknowledge the hold events, so
	// none is left pending with a consumer that will never come back. They
	// are in ann's shard's stream.
	annEvents := b.Engine.Keys().ShardOf(ann.ProjectID, ann.ID).Events()
	require.Eventually(t, func() bool {
		pend, err := b.Redis.XPending(ctx, annEvents, "reconciler").Result()
		return err == nil && pend.Count == 0
	}, 30*time.Second, 20*time.Millisecond)

	gw.kill(t)

	sw, err := b.Engine.NewSweeper(metering.SweeperConfig{Interval: time.Hour, Policy: "charge"})
	require.NoError(t, err)
	settled := 0
	require.Eventually(t, func() bool {
		n, err := sw.RunOnce(ctx)
		require.NoError(t, err)
		settled += n
		return settled == streams
	}, 60*time.Second, 100*time.Millisecond, "the sweeper settled %d of %d leases", settled, streams)
	n, err := sw.RunOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to sweep")

	// Policy "charge": each dead request pays its reservation.
	require.Equal(t, start-streams*reservation, w.effective(t, "ann"))
	b.Drain(t)
	b.AssertConsistent(t)
}
