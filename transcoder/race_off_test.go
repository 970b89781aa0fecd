//go:build !race

package transcoder

const raceDetector = false
