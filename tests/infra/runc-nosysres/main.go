// Test infrastructure, never installed for users: an OCI runtime for dockerd on a machine whose
// capability bounding set lacks CAP_SYS_RESOURCE (a sandbox). It removes that capability from
// the container's config (create, run) or the process spec (exec), and what only it allows:
// raises oomScoreAdj to this process's own value and lowers rlimits above this process's hard
// limits; then it runs runc with the same arguments. Without it `docker run --privileged` fails
// with "unable to apply caps", and a nested dockerd's --default-ulimit with "error setting rlimit".
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const runc = "/usr/sbin/runc"

// flagValue returns the value of --name/-short in args ("--name v" or "--name=v").
func flagValue(args []string, long, short string) string {
	for i, a := range args {
		for _, f := range []string{long, short} {
			if a == f && i+1 < len(args) {
				return args[i+1]
			}
			if strings.HasPrefix(a, f+"=") {
				return strings.TrimPrefix(a, f+"=")
			}
		}
	}
	return ""
}

func ownOOMScoreAdj() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}

// The rlimits a process may have to lower (OCI names; see getrlimit(2)).
var rlimitTypes = map[string]int{
	"RLIMIT_CORE": 4, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8,
	"RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_STACK": 3,
}

// fixRlimits lowers every limit above this process's hard limit to it (raising a hard limit
// needs CAP_SYS_RESOURCE).
func fixRlimits(p map[string]any) {
	list, ok := p["rlimits"].([]any)
	if !ok {
		return
	}
	for _, item := range list {
		rl, ok := item.(map[string]any)
		if !ok {
			continue
		}
		kind, ok := rlimitTypes[fmt.Sprint(rl["type"])]
		if !ok {
			continue
		}
		var own syscall.Rlimit
		if syscall.Getrlimit(kind, &own) != nil {
			continue
		}
		max := float64(own.Max)
		if hard, ok := rl["hard"].(float64); ok && hard > max {
			rl["hard"] = own.Max
		}
		if soft, ok := rl["soft"].(float64); ok && soft > max {
			rl["soft"] = own.Max
		}
	}
}

// fixProcess edits an OCI process object in place.
func fixProcess(p map[string]any) {
	if caps, ok := p["capabilities"].(map[string]any); ok {
		for set, v := range caps {
			list, ok := v.([]any)
			if !ok {
				continue
			}
			kept := list[:0]
			for _, c := range list {
				if c != "CAP_SYS_RESOURCE" {
					kept = append(kept, c)
				}
			}
			caps[set] = kept
		}
	}
	fixRlimits(p)
	// Unset means "keep the parent's value", which is never below this process's.
	if adj, ok := p["oomScoreAdj"].(float64); ok {
		if own := ownOOMScoreAdj(); int(adj) < own {
			p["oomScoreAdj"] = own
		}
	}
}

// fixFile rewrites a JSON file: a bundle's config.json (inConfig) or an exec process spec.
func fixFile(path string, inConfig bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	p := doc
	if inConfig {
		p, _ = doc["process"].(map[string]any)
	}
	if p != nil {
		fixProcess(p)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

func main() {
	args := os.Args[1:]
command:
	for i, a := range args {
		var err error
		switch a {
		case "create", "run":
			bundle := flagValue(args[i+1:], "--bundle", "-b")
			if bundle == "" {
				bundle = "."
			}
			err = fixFile(filepath.Join(bundle, "config.json"), true)
		case "exec":
			if p := flagValue(args[i+1:], "--process", "-p"); p != "" {
				err = fixFile(p, false)
			}
		default:
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "runc-nosysres: %v\n", err)
			os.Exit(1)
		}
		break command
	}
	err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "runc-nosysres: exec %s: %v\n", runc, err)
	os.Exit(1)
}
