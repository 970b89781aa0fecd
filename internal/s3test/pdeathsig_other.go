//go:build !linux

package s3test

import "os/exec"

// setPdeathsig does nothing where the kernel has no parent-death signal; the test's
// cleanup still stops versitygw.
func setPdeathsig(*exec.Cmd) {}
