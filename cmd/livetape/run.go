package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; otherwise the
// module version from the build info is shown, or "dev".
var version = ""

// usageError is a mistake in the command line; main exits with status 2 for it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// command is one subcommand of livetape.
type command struct {
	name    string
	summary string
	// flags returns the command's flag set (for help); run executes the command.
	flags func() *flag.FlagSet
	run   func(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the server: RTMP ingest, live playback, recording, upload, callbacks, VOD replay, the API and /metrics (--no-worker: callbacks left to workers)", func() *flag.FlagSet { fs, _ := configFlags("serve"); return fs }, cmdServe},
		{"worker", "run the shared jobs only (callbacks) against a shared Redis, beside serve nodes", func() *flag.FlagSet { fs, _ := configFlags("worker"); return fs }, cmdWorker},
		{"catalog", "'catalog rebuild': rebuild the recordings index in Redis from the storage", func() *flag.FlagSet { fs, _ := configFlags("catalog"); return fs }, cmdCatalog},
		{"sign", "print signed push and play URLs for a stream", func() *flag.FlagSet { fs, _ := signFlags(); return fs }, cmdSign},
		{"stitch", "join MP4 recordings into one MP4 (a remux, or a transcode to one template when they differ): livetape stitch OUT IN...", func() *flag.FlagSet { fs, _, _ := stitchFlags(); return fs }, cmdStitch},
		{"transcode", "transcode IN OUT: a local file to MP4 renditions or an HLS ABR set, with a progress bar", func() *flag.FlagSet { fs, _ := transcodeFlags(); return fs }, cmdTranscode},
		{"version", "print the version", nil, cmdVersion},
		{"help", "show help for livetape or a command", nil, nil},
	}
}

// run is livetape's whole command line: args are os.Args[1:]. It reads the process
// environment; runEnv takes the environment as a function instead.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runEnv(ctx, args, os.LookupEnv, stdout, stderr)
}

func runEnv(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return usagef("no command given")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return cmdHelp(rest, stdout)
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			err := c.run(ctx, rest, env, stdout, stderr)
			if errors.As(err, new(usageError)) {
				return usageError{fmt.Errorf("%s: %w (see 'livetape help %s')", name, err, name)}
			}
			return err
		}
	}
	printUsage(stderr)
	return usagef("unknown command %q", name)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "livetape is a live-streaming server: RTMP ingest, live HTTP-FLV, HLS and RTMP playback,")
	fmt.Fprintln(w, "recording to MP4, HLS and FLV fragments uploaded to a folder or S3, callbacks, VOD replay")
	fmt.Fprintln(w, "(/vod/), an HTTP API for recordings, callback events and live streams (stats, kick and")
	fmt.Fprintln(w, "ban, recording start/stop: /api/v1/), an on_publish hook, Prometheus metrics (/metrics),")
	fmt.Fprintln(w, "a web console (/console/) and the queue dashboard (/admin/queues/).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: livetape COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'livetape help COMMAND' for a command's flags. Settings also come from a YAML")
	fmt.Fprintln(w, "file (--config, LIVETAPE_CONFIG) and LIVETAPE_* variables; see README.md.")
}

func cmdHelp(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		printUsage(stdout)
		return nil
	}
	if len(args) > 1 {
		return usagef("help: one command at a time")
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		fmt.Fprintf(stdout, "livetape %s: %s\n", c.name, c.summary)
		if c.flags != nil {
			fmt.Fprintln(stdout, "\nFlags:")
			fs := c.flags()
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return nil
	}
	return usagef("help: unknown command %q", args[0])
}

// parseFlags parses args into fs. It returns done=true when help was asked for (and
// printed to stdout); mistakes are usage errors, and so are leftover arguments.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (done bool, err error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Flags of livetape %s:\n", fs.Name())
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return true, nil
		}
		return false, usageError{err}
	}
	if fs.NArg() > 0 {
		return false, usagef("unexpected argument %q", fs.Arg(0))
	}
	return false, nil
}

// configFlags defines the flags of a command that reads the server's settings
// (serve, worker, catalog): -config and every setting, from the same file and LIVETAPE_*
// variables, so that one file serves every role.
func configFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	config := fs.String("config", "", "YAML configuration file (env "+envConfigFile+")")
	registerFlags(fs)
	return fs, config
}

// parseConfig parses the flags of the settings command name and loads its
// configuration; done is true when only the help was asked for (and printed).
func parseConfig(name string, args []string, env func(string) (string, bool), stdout io.Writer) (cfg Config, done bool, err error) {
	fs, configPath := configFlags(name)
	if done, err := parseFlags(fs, args, stdout); done || err != nil {
		return Config{}, done, err
	}
	cfg, err = loadConfig(*configPath, env, fs)
	return cfg, false, err
}

// runRole runs a long-lived role (serve, worker) with its settings and logger.
func runRole(ctx context.Context, name string, args []string, env func(string) (string, bool), stdout, stderr io.Writer,
	run func(context.Context, Config, *slog.Logger) error) error {
	cfg, done, err := parseConfig(name, args, env, stdout)
	if done || err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	return run(ctx, cfg, log)
}

func cmdServe(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	return runRole(ctx, "serve", args, env, stdout, stderr, runServe)
}

func cmdVersion(_ context.Context, args []string, _ func(string) (string, bool), stdout, _ io.Writer) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	fmt.Fprintf(stdout, "livetape %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
