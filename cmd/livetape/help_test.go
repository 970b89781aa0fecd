package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// unbuilt are things the design plans that the code does not have yet: help must not
// offer them.
var unbuilt = []string{}

// `livetape help` and the help of every command describe what exists.
func TestHelpDescribesOnlyWhatExists(t *testing.T) {
	args := [][]string{{"help"}}
	for _, c := range commands() {
		args = append(args, []string{"help", c.name})
	}
	for _, a := range args {
		var stdout, stderr bytes.Buffer
		if err := runEnv(context.Background(), a, mapEnv(nil), &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v", a, err)
		}
		for _, word := range unbuilt {
			if strings.Contains(strings.ToLower(stdout.String()), strings.ToLower(word)) {
				t.Errorf("livetape %s mentions %q, which is not built:\n%s", strings.Join(a, " "), word, stdout.String())
			}
		}
	}
}

// README's Layout table lists only packages that exist.
func TestREADMELayoutListsExistingPackages(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(b), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no Layout section")
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	rows := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(layout, -1)
	if len(rows) < 5 {
		t.Fatalf("Layout table has %d package rows", len(rows))
	}
	for _, row := range rows {
		dir := row[1]
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(dir))); err != nil || !fi.IsDir() {
			t.Errorf("README Layout lists %q, which is not a directory of the repository", dir)
		}
	}
}
