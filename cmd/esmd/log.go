package main

import (
	"io"
	"log/slog"

	"github.com/esmd-dev/esmd/config"
)

// newLogger builds the daemon's logger from the logging section: text or
// JSON records at the configured level, written to w.
func newLogger(cfg config.Logging, w io.Writer) *slog.Logger {
	var level slog.Level
	switch cfg.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
