"""Receiver API tests against the real receiver, MariaDB and nsqd."""
