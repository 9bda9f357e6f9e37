package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// dialTimeout bounds every connection attempt: a server on this machine
// answers at once, one elsewhere within a few seconds or not at all.
const dialTimeout = 5 * time.Second

// startupWait bounds how long ping waits for a PostgreSQL server that says
// it is starting up (or recovering).
const startupWait = 30 * time.Second

// errNotListening marks "nothing accepts connections there": the scripts
// then start a private server, which they must not do when something else
// holds the port.
var errNotListening = errors.New("nothing accepts connections there")

// runPing: does the server at the URL answer? With -wait, a server that
// does not listen yet or is still starting is tried again until it
// answers or the time is up (after starting one).
func runPing(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	wait := fs.Duration("wait", 0, "keep trying for up to this long while the server is not up yet")
	if err := fs.Parse(args); err != nil {
		return usageErrorf("ping: %v", err)
	}
	if fs.NArg() != 2 {
		return usageErrorf("ping takes two arguments: redis|postgres URL")
	}
	srv, err := serverKind(fs.Arg(0))
	if err != nil {
		return err
	}
	raw := fs.Arg(1)
	e, err := srv.parse(raw)
	if err != nil {
		return err
	}
	start := time.Now()
	for {
		err = srv.ping(ctx, raw)
		if err == nil {
			fmt.Fprintf(stdout, "%s at %s answers\n", srv.name, e.Shown)
			return nil
		}
		// A server that is starting up is up soon: waited for always,
		// as pg_isready would. Nothing listening: only with -wait.
		again := errors.Is(err, errStarting) && time.Since(start) < startupWait ||
			errors.Is(err, errNotListening) && time.Since(start) < *wait
		if !again || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	err = fmt.Errorf("%s at %s does not answer: %w", srv.name, e.Shown, err)
	if errors.Is(err, errNotListening) {
		return &exitError{code: exitNotListening, err: err}
	}
	return err
}

// pingRedis sends PING, after AUTH and SELECT when the URL asks for them.
func pingRedis(ctx context.Context, raw string) error {
	c, err := newRedisClient(raw)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*dialTimeout)
	defer cancel()
	return classify(c.Ping(ctx).Err())
}

// errStarting: PostgreSQL accepts connections but is still starting up or
// shutting down (SQLSTATE 57P03).
var errStarting = errors.New("the server is starting up or shutting down")

// pingPostgres connects as the URL says. A server that answers that the
// database does not exist answers: ensure-db creates it.
func pingPostgres(ctx context.Context, raw string) error {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return err
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > dialTimeout {
		cfg.ConnectTimeout = dialTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(context.Background())
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "3D000": // invalid_catalog_name: no such database
			return nil
		case "57P03": // cannot_connect_now
			return fmt.Errorf("%w: %s", errStarting, pgErr.Message)
		}
	}
	return classify(err)
}

// classify marks a refused connection (or a missing socket file) as
// errNotListening, keeping the original message.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("%w (%v)", errNotListening, err)
	}
	return err
}

// runListening: does anything accept TCP connections at HOST PORT? For
// ports the scripts are about to use (gateway, upstream, benchmark).
func runListening(ctx context.Context, args []string) error {
	if len(args) != 2 {
		return usageErrorf("listening takes two arguments: HOST PORT")
	}
	port, err := parsePort(args[1])
	if err != nil {
		return usageErrorf("listening: %v", err)
	}
	// "[::1]" as the scripts write an IPv6 address in a URL.
	host := strings.TrimSuffix(strings.TrimPrefix(args[0], "["), "]")
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return &exitError{code: exitNotListening, err: fmt.Errorf("nothing accepts connections at %s (%v)", printable(addr), err)}
	}
	return conn.Close()
}
