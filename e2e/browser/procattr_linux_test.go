package browser

import (
	"os/exec"
	"syscall"
)

// dieWithTests makes the kernel kill a started binary when the test
// process dies without cleaning up (a panic, go test's -timeout), so no
// gateway is left listening.
func dieWithTests(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
