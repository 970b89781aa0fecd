package main

import (
	"context"
	"log/slog"
)

// runServe runs the serve role until ctx is done. Placeholder until the wiring lands.
func runServe(ctx context.Context, cfg Config, log *slog.Logger) error { <-ctx.Done(); return nil }
