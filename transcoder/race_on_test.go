//go:build race

package transcoder

// raceDetector: the test binary runs under the race detector, whose shadow memory grows
// with what the program allocates, so the resident set says nothing about leaks.
const raceDetector = true
