package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/esmd-dev/esmd/config"
)

// runDaemon runs every mapping of cfg until ctx is cancelled (hard stop) or
// drain is closed and the drain completes. It is wired by the lead engineer.
func runDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger, drain <-chan struct{}) error {
	return errors.New("run: not wired yet")
}
