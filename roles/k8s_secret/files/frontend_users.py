"""Print the FRONTEND_USERS entry of the frontend's admin: the current one while it still
matches the password, else a new argon2 hash. Reads {"password": ..., "current": ...} as JSON
on stdin, so neither ever is in a process's arguments."""

import json
import sys

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ADMIN = "admin"

given = json.load(sys.stdin)
hasher = PasswordHasher()
name, _, hashed = given.get("current", "").strip().partition(":")
try:
    keep = name == ADMIN and hasher.verify(hashed, given["password"])
except (VerificationError, InvalidHashError):
    keep = False
print(f"{name}:{hashed}" if keep else f"{ADMIN}:{hasher.hash(given['password'])}")
