// Command dlq-replayer is the SRE's tool for auditstream's dead-letter
// queue (SPEC 6): a daemon that moves dead letters back to their topic
// every interval and parks those that keep failing, and commands to list,
// inspect and replay them by hand. Exit codes: 0 ok, 1 failure, 2 usage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/telemetry"
)

func main() {
	var cfg config.Replayer
	kctx := config.Parse(&cfg, "dlq-replayer", "Inspect auditstream's dead-letter queue and move its records back to their original topic.", os.Args[1:])
	log, err := telemetry.NewLogger(cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dlq-replayer: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, kctx, cfg, log); err != nil {
		fmt.Fprintf(os.Stderr, "dlq-replayer: %v\n", err)
		_ = log.Sync()
		os.Exit(1)
	}
	_ = log.Sync()
}

func dispatch(ctx context.Context, kctx *kong.Context, cfg config.Replayer, log *zap.Logger) error {
	switch kctx.Command() {
	case "run":
		return runDaemon(ctx, cfg, log)
	case "replay":
		return runReplay(ctx, cfg, log, os.Stdout, os.Stderr)
	case "list":
		return runList(ctx, cfg, os.Stdout)
	case "inspect":
		return runInspect(ctx, cfg, os.Stdout)
	default:
		return fmt.Errorf("unknown command %q", kctx.Command())
	}
}
