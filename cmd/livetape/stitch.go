package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/packager/mp4concat"
	"github.com/livetape/livetape/transcoder/runner"
	"github.com/livetape/livetape/transcoder/spec"
)

// stitchFlags defines the flags of `livetape stitch`.
func stitchFlags() (*flag.FlagSet, *bool, *string) {
	fs := flag.NewFlagSet("stitch", flag.ContinueOnError)
	quiet := fs.Bool("quiet", false, "no progress bar")
	template := fs.String("template", "", "template the inputs are transcoded to when their codec configurations differ: "+
		templateNames()+" (default: the largest not above the smallest input)")
	return fs, quiet, template
}

// cmdStitch joins MP4 recordings into one fast-start MP4: `livetape stitch OUT IN...`.
// The inputs follow each other with their gaps closed. When they share one codec
// configuration it is a remux (their samples byte for byte); otherwise each is first
// transcoded to one template in livetape-transcoder (LIVETAPE_TRANSCODER, else beside
// livetape, else on $PATH), as the stitch job does. OUT appears complete or not at all.
func cmdStitch(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	fs, quiet, template := stitchFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: livetape stitch [flags] OUT IN...")
			fmt.Fprintln(stdout, "Joins MP4 recordings (IN, in order) into OUT: without re-encoding when they share one codec configuration, else transcoded to one template first.")
			fmt.Fprintln(stdout, "Flags of livetape stitch:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() < 2 {
		return usagef("want OUT and at least one IN, got %d arguments", fs.NArg())
	}
	out, paths := fs.Arg(0), fs.Args()[1:]
	var forced *spec.Template
	if *template != "" {
		t, ok := spec.FindTemplate(spec.DefaultTemplates(), *template)
		if !ok {
			return usagef("unknown template %q (known: %s)", *template, templateNames())
		}
		forced = &t
	}
	var ins []mp4concat.Input
	for _, p := range paths {
		if same, err := samePath(out, p); err != nil || same {
			return usagef("OUT %s is also an input", out)
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("stitch: %w", err)
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return fmt.Errorf("stitch: %w", err)
		}
		ins = append(ins, mp4concat.Input{Name: p, R: f, Size: info.Size()})
	}

	opts := mp4concat.Options{Gaps: mp4concat.CloseGaps}
	if !*quiet {
		// Made at the first write, with its length: a bar of unknown length spins in a
		// goroutine of its own, which races with Set64 (progressbar v3.19.1) while
		// the inputs are being transcoded.
		var bar *progressbar.ProgressBar
		opts.Progress = func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("stitching"),
					progressbar.OptionShowBytes(true),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
				)
			}
			bar.Set64(done)
		}
	}
	how := "remuxed"
	m, err := mp4concat.Concat(ins, opts)
	if errors.Is(err, mp4concat.ErrConfigMismatch) {
		configured, _ := env("LIVETAPE_TRANSCODER")
		tc := runner.New(configured)
		if tc.Err != nil {
			return fmt.Errorf("stitch: %w: joining them needs a transcode: %w", err, tc.Err)
		}
		var cleanup func()
		m, how, cleanup, err = transcodeAndConcat(ctx, tc, paths, ins, forced, filepath.Dir(out), opts, *quiet, stderr)
		defer cleanup()
	}
	if err != nil {
		return fmt.Errorf("stitch: %w", err)
	}
	if err := writeFileAtomic(out, func(w io.Writer) error {
		_, err := m.WriteTo(ctxWriter{ctx, w})
		return err
	}); err != nil {
		return fmt.Errorf("stitch: %w", err)
	}
	fmt.Fprintf(stdout, "%s: %d inputs %s, %s, %d video and %d audio frames, %d bytes\n",
		out, len(ins), how, m.Duration.Round(time.Millisecond), m.VideoFrames, m.AudioFrames, m.Size())
	return nil
}

// transcodeAndConcat transcodes the inputs (paths, as ins) to forced, or to the
// jobs.StitchTemplate of them, in a temporary directory in dir, and joins the
// transcodes. how says what was done; cleanup closes and removes the transcodes once
// the movie has been written, and is never nil.
func transcodeAndConcat(ctx context.Context, tc runner.Runner, paths []string, ins []mp4concat.Input, forced *spec.Template,
	dir string, opts mp4concat.Options, quiet bool, stderr io.Writer) (m *mp4concat.Movie, how string, cleanup func(), err error) {
	cleanup = func() {}
	infos, durations, err := jobs.ProbeForStitch(ins)
	if err != nil {
		return nil, "", cleanup, err
	}
	tpl := jobs.StitchTemplate(spec.DefaultTemplates(), infos)
	if forced != nil {
		tpl = *forced
	}
	tmp, err := os.MkdirTemp(dir, ".livetape-stitch-")
	if err != nil {
		return nil, "", cleanup, err
	}
	var files []*os.File
	cleanup = func() {
		for _, f := range files {
			f.Close()
		}
		os.RemoveAll(tmp)
	}
	progress, finish := progressBar(stderr, quiet)
	var percent func(float64)
	if progress != nil {
		percent = func(p float64) { progress(spec.Progress{Done: time.Duration(p * 100), Total: 100 * 100}) }
	}
	outs, err := jobs.TranscodeForStitch(ctx, tc, paths, durations, tmp, tpl, percent, nil)
	finish()
	if err != nil {
		return nil, "", cleanup, err
	}
	transcoded, err := jobs.OpenTranscodes(outs, ins, &files)
	if err != nil {
		return nil, "", cleanup, err
	}
	m, err = mp4concat.Concat(transcoded, opts)
	if err != nil {
		return nil, "", cleanup, fmt.Errorf("after transcoding to template %s: %w", tpl.Name, err)
	}
	how = "transcoded to " + tpl.Name
	if first, err := mp4concat.Probe(transcoded[0]); err == nil {
		how += fmt.Sprintf(" (%dx%d)", first.Width, first.Height)
	}
	return m, how, cleanup, nil
}

// samePath reports whether a and b name the same existing file.
func samePath(a, b string) (bool, error) {
	ia, err := os.Stat(a)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ib, err := os.Stat(b)
	if err != nil {
		return false, nil // the open reports it
	}
	return os.SameFile(ia, ib), nil
}

// writeFileAtomic writes path through write: into a temporary file in the same
// directory, synced, then renamed, so that path is complete or untouched.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = write(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ctxWriter fails writes once ctx is done: Ctrl-C stops a long stitch.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
