"""Frontend tests: real frontend, MariaDB and headless Chromium."""
