package scriptrun_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/metering/meteringtest"
)

// redisServer is a test's private redis-server (meteringtest's), so the
// shared test Redis is never flushed, killed or restarted.
type redisServer struct{ *meteringtest.RedisServer }

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	return &redisServer{meteringtest.StartRedisServer(t)}
}

func (s *redisServer) addr() string { return s.Addr() }

// kill ends the server at once (SIGKILL), as a crash would.
func (s *redisServer) kill() { s.Kill() }

// start starts it again on the same port: a new run id, an empty dataset
// and an empty script cache.
func (s *redisServer) start() { s.Start() }

// restart kills the server and starts a new one on the same port.
func (s *redisServer) restart() {
	s.kill()
	s.start()
}

// client is a go-redis client as the gateway makes one (go-redis's default
// retries: the runner's commands must refuse them).
func (s *redisServer) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), PoolSize: 16,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}
