package metering

import (
	"os"
	"syscall"
)

// failpointEnv names the one failpoint a process stops at, for crash
// tests: TOLLGATE_FAILPOINT=<name> makes the process kill itself
// (SIGKILL, as a crash or an OOM kill would) when it reaches the
// failpoint of that name. Unset, as in production, failpoints cost one
// string comparison.
const failpointEnv = "TOLLGATE_FAILPOINT"

var failpointName = os.Getenv(failpointEnv)

// Failpoint names (where each is reached is said where it is used).
const (
	failpointTransferAfterDebit = "transfer-after-debit"
	failpointMoveAfterCopy      = "move-after-copy"
)

// failpoint kills the process if it was told to stop at name.
func failpoint(name string) {
	if failpointName != "" && failpointName == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
