// Command pause is the kit's sandbox ("pause") image, packed under kubeadm's tag: no
// registry is reachable offline, so the image is built from this file. Like upstream's pause.c
// it holds the pod's namespaces, reaps orphaned children (it is PID 1 of the pod
// when the PID namespace is shared) and exits 0 on SIGINT/SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
