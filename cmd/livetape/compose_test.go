package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/livetape/livetape/internal/mediatest"
)

// TestComposeFile checks docker-compose.yml against the binary it runs: every
// LIVETAPE_* variable it sets is a setting livetape reads, and every livetape service
// runs a command livetape has. Then docker-compose itself (Debian's package, which
// validates without a Docker daemon) checks the file is a valid compose file.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	known := map[string]bool{}
	for _, s := range settings {
		if s.Env != "" {
			known[s.Env] = true
		}
	}
	var cmds []string
	for _, c := range commands() {
		cmds = append(cmds, c.name)
	}
	roles := map[string]int{}
	for name, svc := range file.Services {
		if !strings.HasPrefix(svc.Image, "livetape") {
			continue
		}
		if len(svc.Command) == 0 || !slices.Contains(cmds, svc.Command[0]) {
			t.Errorf("service %s runs %q: not a livetape command (%v)", name, svc.Command, cmds)
			continue
		}
		roles[svc.Command[0]]++
		for k := range svc.Environment {
			if strings.HasPrefix(k, "LIVETAPE_") && !known[k] {
				t.Errorf("service %s sets %s, which livetape does not read", name, k)
			}
		}
	}
	if roles["serve"] != 1 || roles["worker"] != 2 {
		t.Errorf("roles %v, want one serve and two workers", roles)
	}
	// Every variable the anchor block sets reaches the services through the merge key,
	// which the struct above already saw; the variables referenced as ${X} must be
	// documented in the README next to the compose instructions.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{(LIVETAPE_[A-Z0-9_]+)`).FindAllStringSubmatch(string(raw), -1) {
		if !strings.Contains(string(readme), m[1]) {
			t.Errorf("docker-compose.yml takes %s from the environment; README does not mention it", m[1])
		}
	}

	if _, err := exec.LookPath("docker-compose"); err != nil {
		mediatest.MissingTool(t, "docker-compose not installed (scripts/test.sh installs it)")
	}
	cmd := exec.Command("docker-compose", "-f", "../../docker-compose.yml", "config", "-q")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}
