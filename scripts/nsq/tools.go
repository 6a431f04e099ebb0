//go:build tools

// Package tools pins the NSQ daemons kube-face's tests and local deployment run.
// scripts/setup.sh builds them with `go build` here: `go install nsq@v1.3.0` cannot be used,
// because it asks the module proxy for nsq's version list, which the proxy refuses.
package tools

import (
	_ "github.com/nsqio/nsq/apps/nsq_tail"
	_ "github.com/nsqio/nsq/apps/nsqd"
	_ "github.com/nsqio/nsq/apps/nsqlookupd"
)
