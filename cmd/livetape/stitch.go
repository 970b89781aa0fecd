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

	"github.com/livetape/livetape/packager/mp4concat"
)

// stitchFlags defines the flags of `livetape stitch`.
func stitchFlags() (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("stitch", flag.ContinueOnError)
	quiet := fs.Bool("quiet", false, "no progress bar")
	return fs, quiet
}

// cmdStitch joins MP4 recordings into one fast-start MP4 without re-encoding:
// `livetape stitch OUT IN...`. The inputs follow each other with their gaps closed;
// they must share one codec configuration. OUT appears complete or not at all.
func cmdStitch(ctx context.Context, args []string, _ func(string) (string, bool), stdout, stderr io.Writer) error {
	fs, quiet := stitchFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: livetape stitch [flags] OUT IN...")
			fmt.Fprintln(stdout, "Joins MP4 recordings (IN, in order) into OUT without re-encoding; they must share one codec configuration.")
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
		bar := progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("stitching"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
		)
		opts.Progress = func(done, total int64) {
			if bar.GetMax64() != total {
				bar.ChangeMax64(total)
			}
			bar.Set64(done)
		}
	}
	m, err := mp4concat.Concat(ins, opts)
	if errors.Is(err, mp4concat.ErrConfigMismatch) {
		return fmt.Errorf("stitch: %w (transcode the inputs to one configuration first)", err)
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
	fmt.Fprintf(stdout, "%s: %d inputs, %s, %d video and %d audio frames, %d bytes\n",
		out, len(ins), m.Duration.Round(time.Millisecond), m.VideoFrames, m.AudioFrames, m.Size())
	return nil
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
