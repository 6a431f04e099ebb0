module kube-face.local/tests/infra/runc-nosysres

go 1.24
