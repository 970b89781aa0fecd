package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"

	"github.com/livetape/livetape/transcoder/runner"
	"github.com/livetape/livetape/transcoder/spec"
)

// transcodeOptions are the flags of `livetape transcode`.
type transcodeOptions struct {
	template  string
	templates string
	hls       bool
	poster    string
	quiet     bool
}

// transcodeFlags defines the flags of `livetape transcode IN OUT`.
func transcodeFlags() (*flag.FlagSet, *transcodeOptions) {
	o := new(transcodeOptions)
	fs := flag.NewFlagSet("transcode", flag.ContinueOnError)
	fs.StringVar(&o.template, "template", "hd", "template of a single output: "+templateNames())
	fs.StringVar(&o.templates, "templates", "", "several templates, comma-separated (e.g. sd,hd,uhd): OUT is then a directory of NAME.mp4, or with --hls the ABR set")
	fs.BoolVar(&o.hls, "hls", false, "write HLS: OUT is a directory with master.m3u8 and one variant per template")
	fs.StringVar(&o.poster, "poster", "", "also write a JPEG poster (at 10 % of the duration) to this file")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	return fs, o
}

func templateNames() string {
	var names []string
	for _, t := range spec.DefaultTemplates() {
		names = append(names, fmt.Sprintf("%s (%dp, %d kbps)", t.Name, t.ShortSide, t.VideoKbps))
	}
	return strings.Join(names, ", ")
}

// cmdTranscode transcodes a local file in livetape-transcoder (LIVETAPE_TRANSCODER, else
// beside livetape, else on $PATH), showing a progress bar on stderr and one line per
// output on stdout. An interrupt (ctx) stops the child and leaves no output.
func cmdTranscode(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	fs, o := transcodeFlags()
	// IN and OUT may come before, between or after the flags.
	var positional []string
	for {
		if done, err := parseFlagsUntilArg(fs, args, stdout); done || err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 2 {
		return usagef("want IN and OUT, got %d arguments", len(positional))
	}
	in, out := positional[0], positional[1]
	names := []string{o.template}
	if o.templates != "" {
		names = strings.Split(o.templates, ",")
	}
	var templates []spec.Template
	for _, name := range names {
		t, ok := spec.FindTemplate(spec.DefaultTemplates(), strings.TrimSpace(name))
		if !ok {
			return usagef("unknown template %q (known: %s)", name, templateNames())
		}
		templates = append(templates, t)
	}
	configured, _ := env("LIVETAPE_TRANSCODER")
	tc := runner.New(configured)
	if tc.Err != nil {
		return tc.Err
	}

	progress, finish := progressBar(stderr, o.quiet)
	var res spec.Result
	var err error
	switch {
	case o.hls:
		res, err = tc.TranscodeABR(ctx, in, out, templates, progress)
	case o.templates != "":
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		var outputs []spec.Output
		for _, t := range templates {
			outputs = append(outputs, spec.Output{Template: t, Format: spec.FormatMP4, Path: filepath.Join(out, t.Name+".mp4")})
		}
		res, err = tc.Transcode(ctx, in, outputs, progress)
	default:
		res, err = tc.Transcode(ctx, in, []spec.Output{{Template: templates[0], Format: spec.FormatMP4, Path: out}}, progress)
	}
	finish()
	if err != nil {
		return err
	}
	if o.hls {
		fmt.Fprintf(stdout, "master: %s\n", filepath.Join(out, spec.MasterPlaylist))
	}
	for _, r := range res.Outputs {
		fmt.Fprintf(stdout, "%s: %s %dx%d %.0f fps %d kbit/s (video %d) %s\n",
			r.Template, r.Format, r.Width, r.Height, r.FrameRate, r.Bitrate/1000, r.VideoBitrate/1000, r.Path)
	}
	if o.poster != "" {
		th, err := tc.Thumbnail(ctx, in, o.poster, spec.ThumbnailOptions{})
		if err != nil {
			return fmt.Errorf("poster: %w", err)
		}
		fmt.Fprintf(stdout, "poster: %dx%d at %v %s\n", th.Width, th.Height, th.At, o.poster)
	}
	return nil
}

// parseFlagsUntilArg parses flags up to the first positional argument (left in
// fs.Args()), with parseFlags' handling of help and mistakes.
func parseFlagsUntilArg(fs *flag.FlagSet, args []string, stdout io.Writer) (done bool, err error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return parseFlags(fs, []string{"-h"}, stdout)
		}
		return false, usageError{err}
	}
	return false, nil
}

// progressBar returns a progress callback drawing a bar in percent on w, and the
// function that ends the bar.
func progressBar(w io.Writer, quiet bool) (func(spec.Progress), func()) {
	if quiet {
		return nil, func() {}
	}
	bar := progressbar.NewOptions(100,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("transcoding"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetWidth(30),
	)
	return func(p spec.Progress) {
			bar.Set(int(p.Percent()))
		}, func() {
			bar.Finish()
			fmt.Fprintln(w)
		}
}
