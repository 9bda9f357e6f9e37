package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxIdentifier is PostgreSQL's NAMEDATALEN-1: a longer name is silently
// cut, so "CREATE DATABASE" would create a database the URL never reaches.
const maxIdentifier = 63

// runEnsureDB creates the database a PostgreSQL URL names when the server
// has none by that name, as `make run` and `make test` need before
// migrating. Creating it concurrently with another run is fine.
func runEnsureDB(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageErrorf("ensure-db takes one argument: a PostgreSQL URL")
	}
	created, name, err := ensureDatabase(ctx, args[0])
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "created database %s\n", printable(name))
	} else {
		fmt.Fprintf(stdout, "database %s exists\n", printable(name))
	}
	return nil
}

// runRecreateDB drops the URL's database, disconnecting its sessions, and
// creates it empty: a clean slate for the benchmark.
func runRecreateDB(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageErrorf("recreate-db takes one argument: a PostgreSQL URL")
	}
	name, err := databaseName(args[0])
	if err != nil {
		return err
	}
	err = withMaintenance(ctx, args[0], func(conn *pgx.Conn) error {
		id := pgx.Identifier{name}.Sanitize()
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", printable(name), err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+id); err != nil {
			return fmt.Errorf("create database %s: %w", printable(name), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-created database %s\n", printable(name))
	return nil
}

// ensureDatabase creates the URL's database if missing and says whether it
// did, and the name.
func ensureDatabase(ctx context.Context, raw string) (created bool, name string, err error) {
	if name, err = databaseName(raw); err != nil {
		return false, "", err
	}
	err = withMaintenance(ctx, raw, func(conn *pgx.Conn) error {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
			return fmt.Errorf("look for database %s: %w", printable(name), err)
		}
		if exists {
			return nil
		}
		_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			created = true
			return nil
		// Created by a concurrent run meanwhile: duplicate_database, or
		// the catalog's unique index when both got past the check.
		case errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505"):
			return nil
		}
		return fmt.Errorf("create database %s: %w", printable(name), err)
	})
	return created, name, err
}

// databaseName is the database a URL connects to, refused when PostgreSQL
// could not hold it as it is.
func databaseName(raw string) (string, error) {
	e, err := parsePostgresURL(raw)
	if err != nil {
		return "", err
	}
	switch {
	case e.Database == "":
		return "", fmt.Errorf("%s names no database and no user", e.Shown)
	case len(e.Database) > maxIdentifier:
		return "", fmt.Errorf("database name %s is %d bytes long; PostgreSQL keeps only %d", printable(e.Database), len(e.Database), maxIdentifier)
	}
	return e.Database, nil
}

// withMaintenance runs fn on a connection to the server's maintenance
// database: "postgres", or "template1" on a server without one.
func withMaintenance(ctx context.Context, raw string, fn func(*pgx.Conn) error) error {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return fmt.Errorf("not a usable PostgreSQL URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > dialTimeout {
		cfg.ConnectTimeout = dialTimeout
	}
	shown := parsedShown(raw)
	var conn *pgx.Conn
	for _, db := range []string{"postgres", "template1"} {
		cfg.Database = db
		conn, err = pgx.ConnectConfig(ctx, cfg)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL at %s as user %s: %w", shown, printable(cfg.User), err)
	}
	defer conn.Close(context.Background())
	return fn(conn)
}

// parsedShown is the password-free form of a URL already known to parse.
func parsedShown(raw string) string {
	e, err := parsePostgresURL(raw)
	if err != nil {
		return "the URL"
	}
	return e.Shown
}
