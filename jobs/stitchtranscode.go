package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/livetape/livetape/packager/mp4concat"
	"github.com/livetape/livetape/transcoder/runner"
	"github.com/livetape/livetape/transcoder/spec"
)

// How a stitch was made, in its job result and event 300 (field "stitch").
const (
	// StitchRemux: every input had one codec configuration; the samples are the
	// inputs' own.
	StitchRemux = "remux"
	// StitchTranscode: the inputs differed; each was transcoded to one template first.
	StitchTranscode = "transcode"
)

// StitchTemplate chooses the template that recordings of different configurations are
// transcoded to before they are stitched: of templates, the one with the largest short
// side not above the smallest input's short side. The transcoder never upscales, so a
// template above the smallest input would leave that input at its own size, and the
// sizes would still differ; at or below it every input comes out at one size (inputs
// of one aspect ratio and orientation). When every template is above the smallest
// input, the smallest template is used with its short side lowered to that input's
// (named after it, "240p"). Inputs without video choose the smallest template.
func StitchTemplate(templates []spec.Template, inputs []mp4concat.Info) spec.Template {
	if len(templates) == 0 {
		templates = spec.DefaultTemplates()
	}
	sorted := slices.Clone(templates)
	slices.SortStableFunc(sorted, func(a, b spec.Template) int { return a.ShortSide - b.ShortSide })
	smallest := 0
	for _, in := range inputs {
		if in.Width > 0 && in.Height > 0 {
			short := min(in.Width, in.Height)
			if smallest == 0 || short < smallest {
				smallest = short
			}
		}
	}
	if smallest == 0 {
		return sorted[0]
	}
	best := -1
	for i, t := range sorted {
		if t.ShortSide <= smallest {
			best = i
		}
	}
	if best >= 0 {
		return sorted[best]
	}
	t := sorted[0]
	t.ShortSide = max(16, smallest&^1)
	t.Name = strconv.Itoa(t.ShortSide) + "p"
	return t
}

// ProbeForStitch reads what StitchTemplate and TranscodeForStitch need of the inputs:
// their pictures and durations.
func ProbeForStitch(ins []mp4concat.Input) ([]mp4concat.Info, []time.Duration, error) {
	infos := make([]mp4concat.Info, len(ins))
	durations := make([]time.Duration, len(ins))
	for i, in := range ins {
		var err error
		if infos[i], err = mp4concat.Probe(in); err != nil {
			return nil, nil, err
		}
		durations[i] = infos[i].Duration
	}
	return infos, durations, nil
}

// OpenTranscodes opens the transcodes outs (of ins, in order) as concat inputs keeping
// each input's name and start; the files it opens are added to files, for the caller
// to close.
func OpenTranscodes(outs []string, ins []mp4concat.Input, files *[]*os.File) ([]mp4concat.Input, error) {
	transcoded := make([]mp4concat.Input, len(outs))
	for i, path := range outs {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		*files = append(*files, f)
		info, err := f.Stat()
		if err != nil {
			return nil, err
		}
		transcoded[i] = mp4concat.Input{Name: ins[i].Name + " (transcoded)", R: f, Size: info.Size(), Start: ins[i].Start}
	}
	return transcoded, nil
}

// TranscodeForStitch transcodes the MP4s at paths, one after the other, to tpl in dir
// and returns the outputs' paths, in order. progress gets 0–100 over all of them, each
// input weighing its duration. remove, when set, is called with each input's path once
// it has been transcoded (a downloaded copy can go).
func TranscodeForStitch(ctx context.Context, tc runner.Runner, paths []string, durations []time.Duration,
	dir string, tpl spec.Template, progress func(percent float64), remove func(path string)) ([]string, error) {
	var total time.Duration
	for _, d := range durations {
		total += d
	}
	var done time.Duration
	var outs []string
	for i, in := range paths {
		out := filepath.Join(dir, fmt.Sprintf("stitch-%04d.mp4", i))
		weigh := func(p spec.Progress) {
			if progress != nil && total > 0 {
				progress(100 * (float64(done) + p.Percent()/100*float64(durations[i])) / float64(total))
			}
		}
		if _, err := tc.Transcode(ctx, in, []spec.Output{{Template: tpl, Format: spec.FormatMP4, Path: out}}, weigh); err != nil {
			return nil, fmt.Errorf("transcode %s to template %s: %w", filepath.Base(in), tpl.Name, err)
		}
		if remove != nil {
			remove(in)
		}
		done += durations[i]
		if progress != nil && total > 0 {
			progress(100 * float64(done) / float64(total))
		}
		outs = append(outs, out)
	}
	return outs, nil
}
