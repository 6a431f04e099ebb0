#!/usr/bin/env bash
# TEST INFRASTRUCTURE: the stand-in's entry point, a small subset of the official mysql image's.
# On the first start (empty data directory) it creates the system tables, the root password,
# MYSQL_DATABASE and MYSQL_USER/MYSQL_PASSWORD, and runs /docker-entrypoint-initdb.d/*.sql|*.sh.
# Passwords reach the server only as SQL on stdin: never on a command line or in a log.
set -euo pipefail

datadir=/var/lib/mysql
[ "${1:0:1}" = "-" ] && set -- mariadbd "$@"

# VAR or VAR_FILE (a mounted secret), as the official image reads them.
file_env() {
  local var=$1 file_var=${1}_FILE
  if [ -n "${!file_var:-}" ]; then
    [ -z "${!var:-}" ] || { echo "entrypoint: set $var or $file_var, not both" >&2; exit 1; }
    export "$var"="$(<"${!file_var}")"
  fi
  unset "$file_var"
}
sql_string() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\\\'}"; }
sql_name() { printf '`%s`' "${1//\`/\`\`}"; }

if [ "$1" = "mariadbd" ] && [ ! -d "$datadir/mysql" ]; then
  for v in MYSQL_ROOT_PASSWORD MYSQL_DATABASE MYSQL_USER MYSQL_PASSWORD; do file_env "$v"; done
  echo "entrypoint: initialising $datadir"
  # --user only as root: it makes mariadb-install-db chown the datadir, which a non-root pod on a
  # volume it may write but does not own (fsGroup, hostPath 0777) is not permitted to do.
  # The socket account stays this user's either way (the init SQL below connects as it).
  user_opt=(); [ "$(id -u)" != 0 ] || user_opt=(--user="$(id -un)")
  mariadb-install-db --datadir="$datadir" "${user_opt[@]}" --skip-test-db \
    --auth-root-authentication-method=socket --auth-root-socket-user="$(id -un)" >/dev/null
  sock=/run/mysqld/init.sock
  mariadbd --datadir="$datadir" --skip-networking --socket="$sock" &
  pid=$!
  for _ in $(seq 1 300); do
    mariadb-admin --socket="$sock" ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "entrypoint: mariadbd exited while initialising" >&2; exit 1; }
    sleep 0.1
  done
  {
    if [ -n "${MYSQL_ROOT_PASSWORD:-}" ]; then
      pw=$(sql_string "$MYSQL_ROOT_PASSWORD")
      echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD($pw);"
      echo "CREATE USER 'root'@'%' IDENTIFIED BY $pw; GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    fi
    if [ -n "${MYSQL_DATABASE:-}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS $(sql_name "$MYSQL_DATABASE");"
    fi
    if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
      echo "CREATE USER $(sql_string "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_string "$MYSQL_PASSWORD");"
      if [ -n "${MYSQL_DATABASE:-}" ]; then
        echo "GRANT ALL ON $(sql_name "$MYSQL_DATABASE").* TO $(sql_string "$MYSQL_USER")@'%';"
      fi
    fi
  } | mariadb --socket="$sock" --user="$(id -un)"
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sql) echo "entrypoint: running $f"; mariadb --socket="$sock" --user="$(id -un)" ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} <"$f" ;;
      *.sql.gz) echo "entrypoint: running $f"; gunzip -c "$f" | mariadb --socket="$sock" --user="$(id -un)" ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} ;;
      *.sh) echo "entrypoint: running $f"; . "$f" ;;
      *) ;;
    esac
  done
  mariadb-admin --socket="$sock" --user="$(id -un)" shutdown
  wait "$pid" || true
  unset MYSQL_ROOT_PASSWORD MYSQL_PASSWORD
  echo "entrypoint: initialised"
fi
exec "$@"
