// Command hello is the stage-2 probe workload: a static HTTP server that answers
// "hello from POD_NAME (HOSTNAME)" on / and "ok" on /healthz. It proves that a real
// pod runs, becomes Ready and is reachable through a Service and port-forward.
// "hello get URL" is a client (the image has no shell): it prints the body and exits
// non-zero on any error, for pod-to-Service checks with kubectl exec.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func get(url string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(os.Stdout, resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}

// saCA is the cluster CA a pod gets with its ServiceAccount token.
const saCA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		// The image has no CA bundle: trust the cluster CA for https (in-cluster API checks).
		if _, err := os.Stat(saCA); err == nil && os.Getenv("SSL_CERT_FILE") == "" {
			_ = os.Setenv("SSL_CERT_FILE", saCA)
		}
		os.Exit(get(os.Args[2]))
	}
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = ":8080"
	}
	host, _ := os.Hostname()
	pod := os.Getenv("POD_NAME")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s (%s) to %s\n", pod, host, r.RemoteAddr)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("hello listening on %s", addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
