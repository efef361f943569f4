// Package service is the life of a long-running binary, from start to exit
// status: the signal context, how a failure ends the process, and the HTTP
// server that keeps serving through a graceful shutdown. It is apart from
// telemetry, which owns what operators observe (logger, metrics, health):
// the order a binary starts and stops in is read here, in one place, and
// the health state it flips is telemetry's.
package service

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/internal/telemetry"
)

// Run is the life of a long-running binary: it builds the logger, runs run
// with a context that SIGTERM or Ctrl-C cancels, logs how it ended, and
// exits 1 if run failed, with the error on stderr. run owns the shutdown
// order: it returns once it has drained and closed what it started.
func Run(name, logLevel, logFormat string, run func(ctx context.Context, log *zap.Logger) error) {
	logger, err := telemetry.NewLogger(logLevel, logFormat)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, logger)
	stop()
	if err != nil {
		logger.Error(name+" stopped with an error", zap.Error(err))
		_ = logger.Sync()
		// Also in plain words, last: what an operator reads first in a
		// crash loop, and what Kubernetes keeps as the termination
		// message.
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	logger.Info(name + " stopped")
	_ = logger.Sync()
}
