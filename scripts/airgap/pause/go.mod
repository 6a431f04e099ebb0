module kube-face.local/pause

go 1.22
