//go:build !unix

package main

// Elsewhere than on Unix the output is not scrubbed (see scrub_unix.go):
// filter the logs in the Caddyfile instead.
func scrubOutput() error { return nil }

func runScrubber() {}

func isScrubber() bool { return false }
