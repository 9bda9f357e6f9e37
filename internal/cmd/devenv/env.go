package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// runEnv prints what a URL means as shell assignments for `eval`: R_* for
// Redis, P_* for PostgreSQL (HOST PORT DB USER PASS TLS LOCAL SHOWN). Every
// value is single-quoted, so nothing in a hostile URL can run as shell.
func runEnv(args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return usageErrorf("env takes two arguments: redis|postgres URL")
	}
	srv, err := serverKind(args[0])
	if err != nil {
		return err
	}
	e, err := srv.parse(args[1])
	if err != nil {
		return err
	}
	port := ""
	if e.Port != 0 {
		port = strconv.Itoa(e.Port)
	}
	for _, kv := range [][2]string{
		{"HOST", e.Host}, {"PORT", port}, {"DB", e.Database}, {"USER", e.User}, {"PASS", e.Password},
		{"TLS", boolDigit(e.TLS)}, {"LOCAL", boolDigit(e.Local)}, {"SHOWN", e.Shown},
	} {
		fmt.Fprintf(stdout, "%s_%s=%s\n", srv.prefix, kv[0], shellQuote(kv[1]))
	}
	return nil
}

// server is a kind of server the commands know: how its URL is read and
// how it is asked whether it answers.
type server struct {
	name   string // for messages
	prefix string // of the shell variables env prints
	parse  func(raw string) (endpoint, error)
	ping   func(ctx context.Context, raw string) error
}

var (
	redisServer    = server{name: "Redis", prefix: "R", parse: parseRedisURL, ping: pingRedis}
	postgresServer = server{name: "PostgreSQL", prefix: "P", parse: parsePostgresURL, ping: pingPostgres}
)

// serverKind reads a command's server argument.
func serverKind(arg string) (server, error) {
	switch arg {
	case "redis":
		return redisServer, nil
	case "postgres", "postgresql":
		return postgresServer, nil
	}
	return server{}, usageErrorf("the server kind is redis or postgres, not %s", printable(arg))
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// shellQuote quotes s for a POSIX shell: inside single quotes nothing is
// special but the single quote itself, written as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
