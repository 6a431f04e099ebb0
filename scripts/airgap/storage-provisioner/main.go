// minikube's storage-provisioner (k8s.io/minikube-hostpath), built for the offline kit.
//
// minikube v1.37.0's own cmd/storage-provisioner uses sig-storage-lib-external-provisioner v6,
// whose leader election asks client-go for an Endpoints lock; the client-go that minikube
// requires has removed that lock type, so the provisioner exits before provisioning anything.
// minikube runs a single replica of it, which needs no election: this main is minikube's
// StartStorageProvisioner with leader election off, around minikube's own hostPath provisioner.
package main

import (
	"context"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/minikube/pkg/storage"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v6/controller"
)

const (
	provisionerName = "k8s.io/minikube-hostpath"
	pvDir           = "/tmp/hostpath-provisioner"
)

func main() {
	// klog writes its files under /tmp.
	if err := os.MkdirAll("/tmp", 0o755); err != nil {
		klog.Exitf("creating /tmp: %v", err)
	}
	config, err := rest.InClusterConfig()
	if err != nil {
		klog.Exit(err)
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Exitf("creating the client: %v", err)
	}
	serverVersion, err := clientset.Discovery().ServerVersion()
	if err != nil {
		klog.Exitf("getting the server version: %v", err)
	}
	pc := controller.NewProvisionController(clientset, provisionerName, storage.NewHostPathProvisioner(pvDir),
		serverVersion.GitVersion, controller.LeaderElection(false))
	klog.Info("storage provisioner started (no leader election)")
	pc.Run(context.Background())
}
