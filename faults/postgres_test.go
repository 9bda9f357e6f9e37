//go:build faults

package faults

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/metering/meteringtest"
)

// pgCluster is the suite's private PostgreSQL: initdb once, then the
// postmaster run as a child (not daemonized by pg_ctl) so that the suite
// can stop and restart it and a dead test process takes it along. As root
// both run as the postgres system user, since PostgreSQL refuses root.
type pgCluster struct {
	bindir, base, data, sock, logPath string
	port                              int
	cred                              *syscall.Credential
	p                                 *proc
	starts                            int
}

const pgDatabase = "tollgate"

func newPostgres(base string) (*pgCluster, error) {
	bindir, err := meteringtest.PostgresBindir()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &pgCluster{bindir: bindir, base: filepath.Join(base, "pg"), port: port,
		logPath: filepath.Join(base, "logs", "postgres.log")}
	c.data, c.sock = filepath.Join(c.base, "data"), filepath.Join(c.base, "run")
	if err := os.MkdirAll(c.sock, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres system user (installing the postgresql package creates it): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{c.base, c.sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
		// The postgres user must reach its directory through every parent.
		for d := filepath.Dir(c.base); d != "/"; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err != nil || st.Mode().Perm()&0o001 == 0 {
				return nil, fmt.Errorf("the postgres user cannot reach %s (%s is closed to other users): set TMPDIR to a directory it can reach, e.g. /tmp", c.base, d)
			}
		}
	}
	initLog := filepath.Join(base, "logs", "initdb.log")
	p, err := startProc("initdb", initLog, os.Environ(), c.cred, filepath.Join(bindir, "initdb"),
		"-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Minute):
		p.kill()
		return nil, fmt.Errorf("initdb did not finish within 5 minutes: %s", p.tail(20))
	}
	if p.waitErr != nil {
		return nil, fmt.Errorf("initdb failed (%v): %s", p.waitErr, p.tail(20))
	}
	return c, nil
}

func (c *pgCluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// start runs the postmaster and waits until it accepts connections; the
// first start also creates the database.
func (c *pgCluster) start() error {
	c.starts++
	appendNote(c.logPath, fmt.Sprintf("=== start %d", c.starts))
	p, err := startProc("postgres", c.logPath, os.Environ(), c.cred, filepath.Join(c.bindir, "postgres"),
		"-D", c.data, "-p", strconv.Itoa(c.port), "-k", c.sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=80", "-c", "shared_buffers=32MB")
	if err != nil {
		return err
	}
	c.p = p
	if err := waitFor("postgres accepts connections", 120*time.Second, func() (bool, string) {
		if p.exited() {
			return false, "postgres exited: " + oneLine(p.tail(10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close(ctx)
		return true, ""
	}); err != nil {
		return err
	}
	if c.starts > 1 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgDatabase)
	return err
}

// stop shuts the cluster down the way `pg_ctl stop -m fast` does (SIGINT:
// open transactions are rolled back, connections closed).
func (c *pgCluster) stop() {
	if c.p != nil {
		c.p.stop(syscall.SIGINT, 60*time.Second)
	}
}
