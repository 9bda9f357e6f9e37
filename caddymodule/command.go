package caddymodule

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/metering"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "migrate",
		Usage: "[--database <url>]",
		Short: "Applies Tollgate's database migrations",
		Long: `Applies every Tollgate migration not yet applied to the database, under an
advisory lock, so it is safe to run while gateways start. The URL comes from
--database or, when absent, the TOLLGATE_DATABASE_URL environment variable.`,
		Flags: func() *flag.FlagSet {
			fs := flag.NewFlagSet("migrate", flag.ExitOnError)
			fs.String("database", "", "Postgres URL (default $TOLLGATE_DATABASE_URL)")
			return fs
		}(),
		Func: cmdMigrate,
	})
}

func cmdMigrate(fl caddycmd.Flags) (int, error) {
	url := fl.String("database")
	if url == "" {
		url = os.Getenv("TOLLGATE_DATABASE_URL")
	}
	if url == "" {
		return exitBadFlags, errors.New("no database: pass --database URL or set TOLLGATE_DATABASE_URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		return exitBadFlags, fmt.Errorf("database URL: %w", err)
	}
	defer db.Close()
	applied, err := metering.Migrate(ctx, db)
	for _, m := range applied {
		fmt.Println("applied", m)
	}
	if err != nil {
		return 1, err
	}
	if len(applied) == 0 {
		fmt.Println("database is up to date")
	}
	return 0, nil
}

const exitBadFlags = 2
