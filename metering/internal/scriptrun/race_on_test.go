//go:build race

package scriptrun_test

// raceDetector: the race detector is on, and sync.Pool drops items on
// purpose, so allocation counts vary from run to run.
const raceDetector = true
