//go:build !linux

package browser

import "os/exec"

// dieWithTests: only Linux can tie a child's life to its parent's.
func dieWithTests(*exec.Cmd) {}
