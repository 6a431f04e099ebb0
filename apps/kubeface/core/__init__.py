"""The shared core every kube-face service imports: configuration, database, statuses, logging."""
