// Command bench-cluster is what bench/cluster.sh (`make bench-cluster`)
// needs from Go: free loopback ports for private redis-servers, waiting for
// them (and for a Redis Cluster to agree on its slots), seeding projects and
// users through the admin API, snapshots of each master's CPU and script
// counters with the charges the ledger recorded for the users it serves,
// and the report. The shell script only starts and stops processes.
//
//	bench-cluster free-ports N
//	bench-cluster wait-redis [-cluster] ADDR...
//	bench-cluster seed -admin URL -projects 24 -users 4 -out KEYS_FILE
//	bench-cluster snapshot -masters ADDR,... -postgres URL -shards 12 [-cluster] [-reset] -out FILE
//	bench-cluster report DIR
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-cluster: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command: free-ports, wait-redis, seed, snapshot or report")
	}
	switch args[0] {
	case "free-ports":
		return runFreePorts(args[1:])
	case "wait-redis":
		return runWaitRedis(ctx, args[1:])
	case "seed":
		return runSeed(ctx, args[1:])
	case "snapshot":
		return runSnapshot(ctx, args[1:])
	case "report":
		return runReport(args[1:], os.Stdout)
	}
	return fmt.Errorf("unknown command %q", args[0])
}
