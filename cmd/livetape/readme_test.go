package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the configuration reference in README.md")

const (
	referenceBegin = "<!-- BEGIN config-reference: generated from cmd/livetape/config.go by `go test ./cmd/livetape -run README -update` -->\n"
	referenceEnd   = "<!-- END config-reference -->\n"
)

// configReference renders settings as the Markdown table of README.md.
func configReference() string {
	def := defaultConfig()
	orDash := func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	}
	code := func(s string) string {
		if s == "" {
			return "—"
		}
		return "`" + s + "`"
	}
	var b strings.Builder
	b.WriteString("| YAML key | environment | flag | default | meaning |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	for _, s := range settings {
		flagName, value := "", ""
		if s.Flag != "" {
			flagName = "--" + s.Flag
		}
		if s.get != nil {
			value = "empty"
			if v := s.get(&def); v != "" {
				value = code(v)
			}
		}
		b.WriteString("| " + code(s.YAML) + " | " + code(s.Env) + " | " + code(flagName) + " | " +
			orDash(value) + " | " + s.Help + " |\n")
	}
	return b.String()
}

// TestREADMEConfigReference keeps README.md's configuration table equal to settings, and
// every LIVETAPE_ variable README.md mentions in the table.
func TestREADMEConfigReference(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	before, rest, ok1 := strings.Cut(readme, referenceBegin)
	current, after, ok2 := strings.Cut(rest, referenceEnd)
	if !ok1 || !ok2 {
		t.Fatalf("README.md lacks the markers\n%s%s", referenceBegin, referenceEnd)
	}
	want := configReference()
	if current != want {
		if *update {
			if err := os.WriteFile(path, []byte(before+referenceBegin+want+referenceEnd+after), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Log("README.md updated")
		} else {
			t.Errorf("README.md's configuration reference is stale; run go test ./cmd/livetape -run README -update\n got:\n%s\nwant:\n%s", current, want)
		}
	}

	// The example configuration in README.md must load.
	_, example, _ := strings.Cut(readme, "```yaml\n")
	example, _, _ = strings.Cut(example, "```")
	file := filepath.Join(t.TempDir(), "example.yaml")
	if err := os.WriteFile(file, []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(file, mapEnv(nil), nil); err != nil || example == "" {
		t.Errorf("README.md's example configuration %q: %v", example, err)
	}

	var names []string
	for _, s := range settings {
		if s.Env != "" {
			names = append(names, s.Env)
		}
	}
	for _, m := range regexp.MustCompile(`LIVETAPE_[A-Z0-9_]*[A-Z0-9]`).FindAllString(readme, -1) {
		// Variables of the test and benchmark harness are not livetape's configuration.
		if strings.HasPrefix(m, "LIVETAPE_TEST_") || strings.HasPrefix(m, "LIVETAPE_BENCH_") {
			continue
		}
		if !slices.Contains(names, m) {
			t.Errorf("README.md mentions %s, which is not in settings", m)
		}
	}
}
