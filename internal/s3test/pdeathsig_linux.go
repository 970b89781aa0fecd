package s3test

import (
	"os/exec"
	"syscall"
)

// setPdeathsig has the kernel kill versitygw when the test binary dies without running
// its cleanups (a timeout panic, kill -9), so no gateway outlives its test run.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
