// Command devenv is what Tollgate's developer scripts (scripts/*.sh,
// bench/run.sh) need from Go: it reads Redis and PostgreSQL URLs with the
// parsers the gateway itself uses (redis.ParseURL, pgx.ParseConfig), so the
// scripts and the gateway never disagree about what a URL means; it checks
// that a server answers, creates databases, runs a Redis command and seeds
// the demo project through the admin API's client. The scripts keep only
// what is shell's job: installing packages, starting and stopping servers.
//
//	devenv env redis|postgres URL       shell assignments describing the URL
//	devenv ping [-wait D] redis|postgres URL
//	devenv ensure-db URL                create the URL's database if missing
//	devenv recreate-db URL              drop (WITH FORCE) and create it
//	devenv redis URL COMMAND [ARG...]   run one Redis command, print the reply
//	devenv listening HOST PORT          does anything accept TCP there?
//	devenv seed-demo [flags]            demo project, user and price; prints the key
//
// Exit status: 0 success, 1 failure (a sentence on stderr says why), 2 bad
// usage, 3 (ping, listening) nothing accepts connections at the address.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses; the scripts test for exitNotListening.
const (
	exitFailed       = 1
	exitUsage        = 2
	exitNotListening = 3
)

// exitError carries an exit status other than exitFailed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

const usage = `usage: devenv COMMAND [ARG...]

  env redis|postgres URL        print shell assignments (R_* or P_*) for URL
  ping [-wait D] redis|postgres URL
                                does the server at URL answer? (-wait: keep
                                trying for up to D while nothing listens yet)
  ensure-db URL                 create the PostgreSQL database URL names if missing
  recreate-db URL               drop (WITH FORCE) and create URL's database
  redis URL COMMAND [ARG...]    run one Redis command and print its reply
  listening HOST PORT           exit 0 when something accepts TCP at HOST:PORT, else 3
  seed-demo [flags]             create the demo project, user and price through the
                                admin API ($TOLLGATE_ADMIN_TOKEN); print the user's key

Exit status: 0 ok, 1 failed, 2 bad usage, 3 nothing listens at the address.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(report(err, os.Stderr))
}

// report prints err as the scripts show it and returns the exit status.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "devenv: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.code == exitUsage {
			fmt.Fprint(stderr, usage)
		}
		return ee.code
	}
	return exitFailed
}

// run executes one command line (without the program name).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErrorf("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "env":
		return runEnv(rest, stdout)
	case "ping":
		return runPing(ctx, rest, stdout)
	case "ensure-db":
		return runEnsureDB(ctx, rest, stdout)
	case "recreate-db":
		return runRecreateDB(ctx, rest, stdout)
	case "redis":
		return runRedis(ctx, rest, stdout)
	case "listening":
		return runListening(ctx, rest)
	case "seed-demo":
		return runSeedDemo(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageErrorf("unknown command %s", printable(cmd))
}
