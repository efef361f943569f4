// Command auditctl is auditstream's operator tool (SPEC 12): keys generates
// integrity keys. Exit codes: 0 ok, 1 failure, 2 usage.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"

	"github.com/auditstream/auditstream/internal/config"
)

func main() {
	var cfg config.Auditctl
	kctx := config.Parse(&cfg, "auditctl", "auditstream operator tool: integrity keys.", os.Args[1:])
	if err := dispatch(kctx, cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "auditctl: %v\n", err)
		os.Exit(1)
	}
}

func dispatch(kctx *kong.Context, cfg config.Auditctl, out io.Writer) error {
	switch kctx.Command() {
	case "keys":
		return runKeys(cfg.Keys, out)
	default:
		return fmt.Errorf("unknown command %q", kctx.Command())
	}
}
