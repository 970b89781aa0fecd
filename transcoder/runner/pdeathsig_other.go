//go:build !linux

package runner

import "os/exec"

// killWithParent: only Linux can tie a child's life to its parent's.
func killWithParent(*exec.Cmd) {}
