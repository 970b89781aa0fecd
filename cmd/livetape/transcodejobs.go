package main

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/jobs/transcodejob"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
	"github.com/livetape/livetape/transcoder/runner"
	"github.com/livetape/livetape/transcoder/spec"
)

// TranscodeConfig configures the transcode and poster jobs.
type TranscodeConfig struct {
	// Templates are added to the defaults (sd, hd, uhd); one named as a default
	// replaces it.
	Templates []spec.Template `yaml:"templates"`
	// Posters makes a JPEG poster of every MP4 recording once stored (default true).
	Posters bool `yaml:"posters"`
	// Binary is the livetape-transcoder executable that runs each transcode and poster
	// job (a path, or a name on $PATH). Empty: livetape-transcoder beside livetape,
	// else on $PATH.
	Binary string `yaml:"binary"`
}

// all returns the defaults with the configured templates added or replacing them.
func (c TranscodeConfig) all() []spec.Template {
	out := spec.DefaultTemplates()
	for _, t := range c.Templates {
		if i := slices.IndexFunc(out, func(d spec.Template) bool { return d.Name == t.Name }); i >= 0 {
			out[i] = t
		} else {
			out = append(out, t)
		}
	}
	return out
}

// names lists the names of every template, for the API and the push parameters.
func (c TranscodeConfig) names() []string {
	var names []string
	for _, t := range c.all() {
		names = append(names, t.Name)
	}
	return names
}

// Validate reports templates that cannot be encoded or share a name.
func (c TranscodeConfig) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, t := range c.Templates {
		if err := t.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("transcode.templates[%d]: %w", i, err))
		}
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("transcode.templates[%d]: %q named twice", i, t.Name))
		}
		seen[t.Name] = true
		if t.Name == jobs.ABRTemplate {
			errs = append(errs, fmt.Errorf("transcode.templates[%d]: %q names ABR sets", i, t.Name))
		}
	}
	return errors.Join(errs...)
}

// registerTranscodeJobs routes the transcode and poster jobs to livetape-transcoder,
// found once here, and returns its runner for the stitch job. A node that runs them
// (runsJobs) and cannot find it says so now, and its jobs fail with the same error;
// stitches need it only when their recordings differ in codec configuration.
func registerTranscodeJobs(q *jobs.Queue, store storage.Store, cat *catalog.Catalog, cfg Config, runsJobs bool, log *slog.Logger) runner.Runner {
	tc := runner.New(cfg.Transcode.Binary)
	switch {
	case tc.Err != nil && runsJobs:
		log.Error("transcode and poster jobs will fail on this node", "err", tc.Err,
			"stitches", "those of recordings that differ in codec configuration fail too")
	case tc.Err != nil:
		log.Debug("no transcoder on this node, which leaves transcodes to workers", "err", tc.Err)
	default:
		log.Info("transcoder found", "path", tc.Binary)
	}
	h := &transcodejob.Handler{Store: store, Catalog: cat, Queue: q, Transcoder: tc, Templates: cfg.Transcode.all(),
		PublicURL: cfg.PublicURL, Log: log}
	h.Register(q)
	return tc
}
