package meteringtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresServer is a test's private PostgreSQL cluster: initdb, then the
// postmaster as a child process, killed when the test ends. As root both
// run as the postgres system user, since PostgreSQL refuses root.
type PostgresServer struct {
	Port int
	// Dir is the cluster's directory (data/ inside it), owned by the
	// server's user.
	Dir string
	out lockedBuffer
}

// StartPostgresTLS starts a cluster that accepts TLS connections only
// (plain TCP is rejected by pg_hba.conf), with a server certificate from
// ca for 127.0.0.1 and localhost, and trust authentication for user
// postgres over TLS. It waits until a TLS connection trusting ca works.
func StartPostgresTLS(t testing.TB, ca *TestCA) *PostgresServer {
	t.Helper()
	bindir, err := PostgresBindir()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tollgate-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &PostgresServer{Port: FreePort(t), Dir: dir}
	data := filepath.Join(dir, "data")
	cred := postgresUser(t, dir)
	s.run(t, cred, filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")

	// The server's key must belong to the server's user, readable by it alone.
	certFile, keyFile := ca.Issue(t, "postgres-server")
	for src, dst := range map[string]string{certFile: "server.crt", keyFile: "server.key", ca.CertFile: "root.crt"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(data, dst)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if cred != nil {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	hba := "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(filepath.Join(bindir, "postgres"), "-D", data, "-p", strconv.Itoa(s.Port),
		"-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "ssl=on", "-c", "max_connections=40",
		"-c", "shared_buffers=16MB", "-c", "fsync=off")
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres", ca))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return s
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("private postgres on port %d does not accept TLS connections: %v\n%s", s.Port, err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is a connection URL for database db that demands TLS and checks the
// server's certificate against ca (sslmode=verify-full).
func (s *PostgresServer) URL(db string, ca *TestCA) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=verify-full&sslrootcert=%s", s.Port, db, ca.CertFile)
}

// run runs a command to its end, failing the test with its output.
func (s *PostgresServer) run(t testing.TB, cred *syscall.Credential, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(bin), err, out.String())
	}
}

// postgresUser is, when the test runs as root, the postgres system user
// the cluster runs as (dir is handed to it); nil otherwise.
func postgresUser(t testing.TB, dir string) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root, PostgreSQL needs the postgres system user (the postgresql package creates it): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// PostgresBindir finds initdb and postgres: $TOLLGATE_PG_BINDIR, else the
// newest /usr/lib/postgresql/*/bin (Debian), else initdb on PATH.
func PostgresBindir() (string, error) {
	ok := func(d string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(d, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("TOLLGATE_PG_BINDIR"); d != "" {
		if !ok(d) {
			return "", fmt.Errorf("TOLLGATE_PG_BINDIR=%s holds no initdb and postgres", d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return v }
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if ok(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && ok(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	return "", errors.New("PostgreSQL's initdb and postgres were not found: apt-get install postgresql (make test and make test-faults install it)")
}

// lockedBuffer collects a child process's output for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
