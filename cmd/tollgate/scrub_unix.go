//go:build unix

package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// scrubberName is the helper's argv[0]: how it knows its role, and what
// ps shows for it.
const scrubberName = "tollgate-output-scrubber"

// scrubOutput points the process's file descriptors 1 and 2 at pipes read
// by a helper process (this binary again) that redacts API keys and
// writes to the original standard output and error. Descriptors, not the
// os.Stdout and os.Stderr variables, so every writer is covered: Caddy's
// default logger (opened at package init), `log` outputs, libraries and
// the runtime's own crash output. A helper process rather than a
// goroutine, so nothing is lost when the gateway exits or crashes: the
// helper reads until every writer is gone, then exits. It ignores the
// signals a terminal or service manager sends the whole group, so it
// outlives the gateway's last words.
func scrubOutput() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	helper := exec.Command(exe)
	helper.Args = []string{scrubberName}
	helper.Stdout, helper.Stderr = os.Stdout, os.Stderr
	helper.ExtraFiles = []*os.File{outR, errR} // descriptors 3 and 4
	if err := helper.Start(); err != nil {
		return err
	}
	go func() { _ = helper.Wait() }() // reap it if it ever ends first
	outR.Close()
	errR.Close()
	if err := unix.Dup2(int(outW.Fd()), 1); err != nil {
		return err
	}
	if err := unix.Dup2(int(errW.Fd()), 2); err != nil {
		return err
	}
	outW.Close()
	errW.Close()
	return nil
}

// runScrubber is the helper: descriptor 3 to standard output and 4 to
// standard error, scrubbed, until both are closed.
func runScrubber() {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	var wg sync.WaitGroup
	for _, p := range []struct {
		in  uintptr
		out *os.File
	}{{3, os.Stdout}, {4, os.Stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := os.NewFile(p.in, "gateway output")
			s := &keyScrubber{w: p.out}
			buf := make([]byte, 64<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					if _, werr := s.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					if !errors.Is(err, io.EOF) {
						_, _ = s.Write([]byte("\ntollgate: output scrubber: " + err.Error() + "\n"))
					}
					break
				}
			}
			_ = s.Close()
		}()
	}
	wg.Wait()
}

func isScrubber() bool { return len(os.Args) == 1 && os.Args[0] == scrubberName }
