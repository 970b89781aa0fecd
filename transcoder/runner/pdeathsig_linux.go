package runner

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel kill the child when the process that started it dies
// (a worker killed mid-job), so that no transcode outlives its job.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
