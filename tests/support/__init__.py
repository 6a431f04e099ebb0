"""Test infrastructure: real MariaDB, NSQ and kube-face processes on free loopback ports."""
