//go:build faults

package faults

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is the suite's private redis-server: append-only file with
// fsync every second, as most operators run it, and no eviction. Automatic
// AOF rewrites are off so the INCR file only grows and its size over time
// says where "one second ago" was.
type redisServer struct {
	bin, dir, logPath string
	port              int
	p                 *proc
	client            *redis.Client // the suite's own connection, for checks
	starts            int

	mu      sync.Mutex
	samples []aofSample // recent sizes of the INCR file, oldest first
	stop    chan struct{}
}

type aofSample struct {
	at   time.Time
	size int64
}

func newRedis(base string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (make test-faults installs it: apt-get install redis-server)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{bin: bin, dir: filepath.Join(base, "redis"), port: port,
		logPath: filepath.Join(base, "logs", "redis.log"), stop: make(chan struct{})}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	r.client = redis.NewClient(&redis.Options{Addr: r.addr(), DialTimeout: time.Second,
		ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, PoolSize: 4, MaxRetries: -1})
	go r.sample()
	return r, nil
}

func (r *redisServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }
func (r *redisServer) url() string  { return "redis://" + r.addr() + "/0" }

// start runs redis-server (loading its AOF) and waits until it answers PING.
func (r *redisServer) start() error {
	r.starts++
	appendNote(r.logPath, fmt.Sprintf("=== start %d", r.starts))
	p, err := startProc("redis", r.logPath, os.Environ(), nil, r.bin,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--daemonize", "no", "--logfile", "", "--save", "",
		"--appendonly", "yes", "--appendfsync", "everysec", "--aof-load-truncated", "yes",
		"--auto-aof-rewrite-percentage", "0", "--maxmemory-policy", "noeviction")
	if err != nil {
		return err
	}
	r.p = p
	return waitFor("redis answers PING", 60*time.Second, func() (bool, string) {
		if p.exited() {
			return false, "redis-server exited: " + oneLine(p.tail(10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := r.client.Ping(ctx).Err()
		if err != nil {
			return false, err.Error() // LOADING while it reads the AOF
		}
		return true, ""
	})
}

// close kills the server and ends the sampler.
func (r *redisServer) close() {
	close(r.stop)
	if r.p != nil {
		r.p.kill()
	}
	r.client.Close()
}

// incrFile is the AOF file Redis appends to now: the last INCR file of the
// manifest (Redis 7 keeps a multi-part AOF in appenddirname).
func (r *redisServer) incrFile() (string, error) {
	dir := filepath.Join(r.dir, "appendonlydir")
	f, err := os.Open(filepath.Join(dir, "appendonly.aof.manifest"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	name := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// file <name> seq <n> type <b|h|i>
		if len(fields) >= 6 && fields[0] == "file" && fields[4] == "type" && fields[5] == "i" {
			name = fields[1]
		}
	}
	if name == "" {
		return "", fmt.Errorf("no INCR file in %s's manifest", dir)
	}
	return filepath.Join(dir, name), nil
}

// sample records the INCR file's size every 25 ms, keeping a minute.
func (r *redisServer) sample() {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-tick.C:
			name, err := r.incrFile()
			if err != nil {
				continue
			}
			st, err := os.Stat(name)
			if err != nil {
				continue
			}
			r.mu.Lock()
			r.samples = append(r.samples, aofSample{now, st.Size()})
			cut := 0
			for cut < len(r.samples) && now.Sub(r.samples[cut].at) > time.Minute {
				cut++
			}
			r.samples = r.samples[cut:]
			r.mu.Unlock()
		}
	}
}

// sizeAt is the INCR file's size as last sampled at or before t.
// sizeAt returns the last size sampled at or before t, and when.
func (r *redisServer) sizeAt(t time.Time) (int64, time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.samples) - 1; i >= 0; i-- {
		if !r.samples[i].at.After(t) {
			return r.samples[i].size, r.samples[i].at, true
		}
	}
	return 0, time.Time{}, false
}

// crash emulates an OS crash: SIGKILL, then the INCR file cut back to its
// size `lose` before the kill, which is what a machine losing the writes
// not yet fsynced (appendfsync everysec) comes back with. It does not
// restart Redis.
//
// It returns the moment the kept part of the file ends: Redis writes a
// command to the AOF before it answers, so every answer a client had
// before that moment survives; later ones may not.
func (r *redisServer) crash(lose time.Duration) (string, time.Time, error) {
	killedAt := time.Now()
	r.p.kill()
	name, err := r.incrFile()
	if err != nil {
		return "", time.Time{}, err
	}
	st, err := os.Stat(name)
	if err != nil {
		return "", time.Time{}, err
	}
	target, keptUntil, ok := r.sizeAt(killedAt.Add(-lose))
	if !ok {
		return "", time.Time{}, fmt.Errorf("no AOF size sampled %s before the kill", lose)
	}
	target = min(target, st.Size())
	if err := os.Truncate(name, target); err != nil {
		return "", time.Time{}, err
	}
	return fmt.Sprintf("AOF %s cut from %d to %d bytes (%d bytes: the writes of the last %s)",
		filepath.Base(name), st.Size(), target, st.Size()-target, lose), keptUntil, nil
}

// stall freezes Redis (SIGSTOP); resume (SIGCONT) thaws it.
func (r *redisServer) stall() error  { return r.p.signal(syscall.SIGSTOP) }
func (r *redisServer) resume() error { return r.p.signal(syscall.SIGCONT) }
