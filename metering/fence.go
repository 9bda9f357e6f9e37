package metering

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// A Redis that restarts may come back without its last writes: with
// appendfsync everysec an OS crash loses up to a second or two, a failover
// to a replica loses what it had not received. Charges whose events the
// reconciler had already copied to Postgres are then gone from Redis, and
// their users could spend the same credits again. Tollgate notices every
// restart, because every new connection checks the server's run id
// against the one Tollgate last verified (each shard's {tag}:epoch), and refuses to
// use an unverified Redis: the fence. Verifying (heal.go) compares Redis
// with the ledger, reloads what Redis lost, and records the new run id.
// Until then every script call fails before it is sent, so nothing is
// admitted beyond what the ledger says is left.

// RedisFence guards one deployment (key prefix) on one Redis client. Give
// its OnConnect to the client (redis.Options.OnConnect) and the fence to
// the engines over that client (Config.Fence).
type RedisFence struct {
	keys RedisKeys
	// unverified is set when a connection found the server unverified,
	// and cleared once it is verified: while set, no script call is sent
	// and the reconciler waits: the engines verify the server first.
	unverified atomic.Bool
	// mu makes the engines over this client verify one at a time;
	// lastErr and lastTry let callers fail fast while verifying fails
	// (Postgres down), instead of each trying again.
	mu        sync.Mutex
	verifying chan struct{} // closed when the running verification ends
	lastErr   error
	lastTry   time.Time
	// restarted are told when a connection meets a server other than
	// the last one seen: each engine sends its recent releases again
	// (they may be among the writes a restart lost; the runner sends them
	// once the server is verified). seen is that last run id. A mutex of
	// their own: a connection made while mu is held for a verification
	// must not wait for it.
	watchMu   sync.Mutex
	restarted map[*Engine]func()
	seen      string
}

// watch registers an engine to be told of heals; unwatch forgets it.
func (f *RedisFence) watch(e *Engine, fn func()) {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	if f.restarted == nil {
		f.restarted = map[*Engine]func(){}
	}
	f.restarted[e] = fn
}

func (f *RedisFence) unwatch(e *Engine) {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	delete(f.restarted, e)
}

// errFenced is what a connection to an unverified Redis fails with; such
// a connection never carries a command, so nothing was sent.
var errFenced = scriptrun.ErrFenced

// NewRedisFence makes the fence for a key prefix and shard count
// (Config.RedisShards; 0 is the default, one).
func NewRedisFence(prefix string, shards int) (*RedisFence, error) {
	keys, err := NewRedisKeys(prefix, max(shards, 1))
	if err != nil {
		return nil, err
	}
	return &RedisFence{keys: keys}, nil
}

// OnConnect checks a new connection: every shard the server holds must
// have been verified on this server. (The healer has a client of its own,
// without this check.) A connection to a Redis Sentinel passes: go-redis's
// Sentinel client runs OnConnect on those too, and they only ever ask
// where the master is. In a Redis Cluster the connection is to one master,
// and the shards whose slots other masters serve are theirs to check.
func (f *RedisFence) OnConnect(ctx context.Context, cn *redis.Conn) error {
	runID, sentinel, err := serverRunID(ctx, cn)
	if err != nil || sentinel {
		return err
	}
	epoch, err := f.servedEpoch(ctx, cn, runID)
	if err != nil {
		return err
	}
	// A server other than the last one seen, or one not verified, may
	// have lost writes: the engines send their recent releases again.
	restarted := f.noteServer(runID)
	if epoch != runID && f.unverified.CompareAndSwap(false, true) {
		restarted = true
	}
	if restarted {
		f.replay()
	}
	if epoch != runID {
		return fmt.Errorf("%w (run id %s, verified %q)", errFenced, runID, epoch)
	}
	return nil
}

// noteServer records the server's run id and reports whether it differs
// from the one seen before.
func (f *RedisFence) noteServer(runID string) bool {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	changed := f.seen != "" && f.seen != runID
	f.seen = runID
	return changed
}

// replay tells every engine to send its recent releases again.
func (f *RedisFence) replay() {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	for _, fn := range f.restarted {
		fn()
	}
}

// Blocked reports whether Tollgate must not write to Redis now.
func (f *RedisFence) Blocked() bool { return f != nil && f.unverified.Load() }

// servedEpoch reads, on one connection, the run id each shard the server
// holds was verified on, and returns runID when all are verified on this
// server, or else the first epoch that differs ("" never verified). A
// Redis Cluster master answers MOVED for a shard another master holds.
func (f *RedisFence) servedEpoch(ctx context.Context, cn *redis.Conn, runID string) (string, error) {
	shards := f.keys.Shards()
	cmds := make([]*redis.StringCmd, len(shards))
	_, err := cn.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range shards {
			cmds[i] = p.Get(ctx, shards[i].Epoch())
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) && !isMoved(err) {
		return "", err
	}
	for _, c := range cmds {
		epoch, err := c.Result()
		switch {
		case isMoved(err):
			continue
		case errors.Is(err, redis.Nil):
			epoch = ""
		case err != nil:
			return "", err
		}
		if epoch != runID {
			return epoch, nil
		}
	}
	return runID, nil
}

// isMoved reports a Redis Cluster redirection: the key is another
// master's.
func isMoved(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}

// serverRunID reads the server's run id from INFO server, and whether the
// server is a Redis Sentinel rather than a data server.
func serverRunID(ctx context.Context, c redis.Cmdable) (runID string, sentinel bool, err error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", false, err
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			runID = v
		}
		sentinel = sentinel || line == "redis_mode:sentinel"
	}
	if runID == "" {
		return "", false, errors.New("INFO server has no run_id")
	}
	return runID, sentinel, nil
}

// verifiedRunID reads the run id a shard was last verified on ("" none).
func verifiedRunID(ctx context.Context, c redis.Cmdable, sh *ShardKeys) (string, error) {
	epoch, err := c.Get(ctx, sh.Epoch()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return epoch, err
}

// isFenced reports an error from a connection the fence refused.
func isFenced(err error) bool { return errors.Is(err, errFenced) }

// afterVerifying runs fn, a call straight on the Redis client (one that
// does not go through the script runner, which checks the fence itself).
// When the fence stopped it (Redis restarted, or was never verified since
// this gateway started) it verifies Redis and runs fn once more: a fenced
// connection never carried the command, so nothing ran twice.
func (e *Engine) afterVerifying(ctx context.Context, fn func() error) error {
	if e.cfg.Fence.Blocked() {
		if err := e.VerifyRedis(ctx); err != nil {
			return err
		}
	}
	err := fn()
	if !errors.Is(err, errFenced) {
		return err
	}
	if err := e.VerifyRedis(ctx); err != nil {
		return err
	}
	return fn()
}
