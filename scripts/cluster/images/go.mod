module kube-face.local/cluster-images

go 1.22
