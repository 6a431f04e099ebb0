"""The frontend: the Persons of Interest table and a page per image (port 8081)."""
