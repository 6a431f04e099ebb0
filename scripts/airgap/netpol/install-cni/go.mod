module kube-face.local/build/install-cni

go 1.23
