//go:build faults

package faults

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process the suite started. Children get SIGKILL when
// the test process dies (Pdeathsig), so a crashed or timed-out run leaves
// nothing behind; normal ends stop them in t.Cleanup.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited
	mu      sync.Mutex
	waitErr error
}

// startProc runs argv with its output appended to logPath. cred, when not
// nil, runs it as another user (PostgreSQL refuses to run as root).
func startProc(name, logPath string, env []string, cred *syscall.Credential, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig; a process that has already exited is not an error.
func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: %v: %w", p.name, sig, err)
	}
	return nil
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	_ = p.signal(syscall.SIGCONT) // a stopped process dies either way; be explicit
	_ = p.signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to end with sig and waits up to grace before
// killing it; it reports whether it ended by itself.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) bool {
	_ = p.signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.kill()
		return false
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string { return tailFile(p.logPath, n) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// freePort returns a loopback port nobody listened on a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls cond until it is true or deadline passes; the error says
// what was awaited and cond's last complaint. Every wait in the suite goes
// through it, so none is unbounded.
func waitFor(what string, deadline time.Duration, cond func() (bool, string)) error {
	end := time.Now().Add(deadline)
	pause := 10 * time.Millisecond
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(end) {
			if why != "" {
				why = ": " + why
			}
			return fmt.Errorf("%s: not reached within %s%s", what, deadline, why)
		}
		time.Sleep(pause)
		pause = min(pause*2, 200*time.Millisecond)
	}
}

// tcpOpen reports whether something accepts connections at addr.
func tcpOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// oneLine squeezes a multi-line text (a log tail) for a violation line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// appendNote adds a time-stamped line of the suite's own to a log file, so
// a process's log shows where each of its incarnations begins.
func appendNote(path, line string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", time.Now().Format(time.RFC3339Nano), line)
}
