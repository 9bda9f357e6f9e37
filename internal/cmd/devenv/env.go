package main

import (
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
	_, prefix, parse, err := serverKind(args[0])
	if err != nil {
		return err
	}
	e, err := parse(args[1])
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
		fmt.Fprintf(stdout, "%s_%s=%s\n", prefix, kv[0], shellQuote(kv[1]))
	}
	return nil
}

// serverKind names the server a command is about and how its URL is read.
func serverKind(arg string) (name, prefix string, parse func(string) (endpoint, error), err error) {
	switch arg {
	case "redis":
		return "Redis", "R", parseRedisURL, nil
	case "postgres", "postgresql":
		return "PostgreSQL", "P", parsePostgresURL, nil
	}
	return "", "", nil, usageErrorf("the server kind is redis or postgres, not %s", printable(arg))
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
