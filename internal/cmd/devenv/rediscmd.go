package main

import (
	"context"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"
)

// runRedis runs one command on the URL's database and prints the reply: a
// string or number as it is, an array one element a line, nil as "(nil)".
// An error reply is a failure. The benchmark uses it for FLUSHDB and
// INFO commandstats.
func runRedis(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) < 2 {
		return usageErrorf("redis takes a URL and a command: redis URL COMMAND [ARG...]")
	}
	e, err := parseRedisURL(args[0])
	if err != nil {
		return err
	}
	c, err := newRedisClient(args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	cmd := make([]any, len(args)-1)
	for i, a := range args[1:] {
		cmd[i] = a
	}
	reply, err := c.Do(ctx, cmd...).Result()
	if err == redis.Nil {
		reply, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("Redis at %s: %s: %w", e.Shown, printable(args[1]), classify(err))
	}
	printReply(stdout, reply)
	return nil
}

func printReply(w io.Writer, reply any) {
	switch r := reply.(type) {
	case nil:
		fmt.Fprintln(w, "(nil)")
	case []any:
		for _, x := range r {
			printReply(w, x)
		}
	default:
		fmt.Fprintln(w, r)
	}
}

// newRedisClient connects as the URL says, for one command at a time:
// one connection, one dial attempt, no retries (the caller decides).
func newRedisClient(raw string) (*redis.Client, error) {
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, urlError(err)
	}
	opt.DialTimeout, opt.DialerRetries, opt.MaxRetries, opt.PoolSize = dialTimeout, 1, -1, 1
	return redis.NewClient(opt), nil
}

func init() {
	// go-redis logs failed dials on its own; devenv says what failed in
	// one sentence instead.
	redis.SetLogger(silentLogger{})
}

type silentLogger struct{}

func (silentLogger) Printf(context.Context, string, ...any) {}
