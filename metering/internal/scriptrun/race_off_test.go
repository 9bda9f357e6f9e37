//go:build !race

package scriptrun_test

const raceDetector = false
