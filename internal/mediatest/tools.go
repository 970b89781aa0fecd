package mediatest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// envChild marks the child process of RunWithoutTools.
const envChild = "LIVETAPE_TEST_TOOLS_CHILD"

// IsToolsChild reports whether this process is the child RunWithoutTools started: the
// test then calls the helper under test and nothing else.
func IsToolsChild() bool { return os.Getenv(envChild) == "1" }

// RunWithoutTools runs the current test again in a child process of the test binary
// where no tool can be found: PATH is an empty folder, the working directory is outside
// the module (no .cache/bin), no LIVETAPE_TEST_* server is configured, and
// LIVETAPE_TEST_REQUIRE_TOOLS is require ("" for unset). It returns the child's verbose
// output and its exit error. It is how the test helpers prove they honour the switch.
func RunWithoutTools(t *testing.T, require string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "LIVETAPE_TEST_") || strings.HasPrefix(kv, "GOPATH=") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	dir := t.TempDir()
	cmd.Env = append(cmd.Env, "PATH="+dir, envChild+"=1")
	if require != "" {
		cmd.Env = append(cmd.Env, EnvRequireTools+"="+require)
	}
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// CheckRequireTools runs the current test without tools twice and checks that the
// helper it calls in the child skips with want in its message when the switch is off,
// and fails with want and the switch's name when it is on.
func CheckRequireTools(t *testing.T, want string) {
	t.Helper()
	out, err := RunWithoutTools(t, "")
	if err != nil || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, want) {
		t.Errorf("without %s: want a skip saying %q, got err %v:\n%s", EnvRequireTools, want, err, out)
	}
	out, err = RunWithoutTools(t, "1")
	if err == nil || !strings.Contains(out, "--- FAIL") || !strings.Contains(out, want) || !strings.Contains(out, EnvRequireTools) {
		t.Errorf("with %s=1: want a failure saying %q and naming the switch, got err %v:\n%s", EnvRequireTools, want, err, out)
	}
}
