package meteringtest

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a test's private redis-server process on a free loopback
// port, without persistence: a server a test may kill, restart, fail over
// or configure without touching the shared test Redis.
type RedisServer struct {
	Port   int
	t      testing.TB
	args   []string    // redis-server's arguments
	client *tls.Config // what the readiness check connects with
	cmd    *exec.Cmd
	out    lockedBuffer
}

// StartRedisServer starts redis-server with these extra arguments (given
// last, so they may override the defaults) and waits until it answers.
func StartRedisServer(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	port := FreePort(t)
	return startRedis(t, port, nil, append([]string{"--port", strconv.Itoa(port)}, args...))
}

// StartRedisServerTLS starts redis-server serving TLS only, with this
// server certificate and key and, for client certificates, this CA
// (tls-auth-clients is "optional": a client certificate is checked when
// given; pass "--tls-auth-clients", "yes" to demand one). client is the
// TLS configuration the readiness check connects with.
func StartRedisServerTLS(t testing.TB, client *tls.Config, certFile, keyFile, caFile string, args ...string) *RedisServer {
	t.Helper()
	port := FreePort(t)
	return startRedis(t, port, client, append([]string{"--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
		"--tls-auth-clients", "optional"}, args...))
}

// StartSentinel starts a Redis Sentinel with these configuration lines
// (a sentinel rewrites its configuration file, so it gets one of its own).
func StartSentinel(t testing.TB, config string) *RedisServer {
	t.Helper()
	port := FreePort(t)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	if err := os.WriteFile(conf, []byte("port "+strconv.Itoa(port)+"\nbind 127.0.0.1\n"+config+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRedis(t, port, nil, []string{conf, "--sentinel"})
}

func startRedis(t testing.TB, port int, client *tls.Config, args []string) *RedisServer {
	t.Helper()
	if len(args) < 2 || args[1] != "--sentinel" {
		args = append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
			"--dir", t.TempDir()}, args...)
	}
	s := &RedisServer{Port: port, t: t, args: args, client: client}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Start starts the server (again, after Kill: on the same port, with a
// new run id, an empty dataset and an empty script cache) and waits until
// it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatal("redis-server is not on PATH: run make test (it installs Debian's redis-server when missing) or apt-get install redis-server")
	}
	s.cmd = exec.Command(bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, TLSConfig: s.client})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("private redis-server on %s does not answer: %v\n%s", s.Addr(), err, s.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Output is what the server printed so far.
func (s *RedisServer) Output() string { return s.out.String() }

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *RedisServer) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// FreePort is a loopback TCP port nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
