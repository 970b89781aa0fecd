//go:build race

package live

// raceEnabled: the race detector's instrumentation about doubles goroutines' stacks.
const raceEnabled = true
