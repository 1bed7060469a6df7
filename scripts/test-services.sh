#!/usr/bin/env bash
# Starts the local services the test suite talks to (PostgreSQL, MariaDB, Redis) when they are down,
# and prepares what the database-verification tests need. Idempotent; safe to run every time.
set -euo pipefail

log() { echo "test-services: $*" >&2; }

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$name did not come up"; return 1
}

need_pkg() { # command, package
  if ! command -v "$1" >/dev/null 2>&1; then
    log "installing $2"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
  fi
}

# PostgreSQL
need_pkg pg_ctlcluster postgresql
if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  log "starting PostgreSQL"
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
fi
# The verification tests need one role whose password is really checked: the machine's
# PostgreSQL trusts every local login, so add a password rule for that role alone.
hba=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SHOW hba_file')
if ! grep -q 'latchkey_pw_check' "$hba"; then
  log "adding a password rule for role latchkey_pw_check to $hba"
  tmp=$(mktemp)
  { echo "host all latchkey_pw_check 127.0.0.1/32 scram-sha-256"; echo "host all latchkey_pw_check ::1/128 scram-sha-256"; cat "$hba"; } > "$tmp"
  cat "$tmp" > "$hba"; rm -f "$tmp"
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'SELECT pg_reload_conf()' >/dev/null
fi
psql -h 127.0.0.1 -U postgres -d postgres -q >/dev/null <<'SQL'
SET password_encryption = 'scram-sha-256';
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'latchkey_pw_check') THEN
    CREATE ROLE latchkey_pw_check LOGIN PASSWORD 'pg-check-Secret-1';
  ELSE
    ALTER ROLE latchkey_pw_check LOGIN PASSWORD 'pg-check-Secret-1';
  END IF;
END $$;
SQL

# MariaDB
need_pkg mariadb mariadb-server
if ! mysqladmin -h 127.0.0.1 -P 3306 -uroot status >/dev/null 2>&1; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB mysqladmin -h 127.0.0.1 -P 3306 -uroot status
fi
mariadb -h 127.0.0.1 -P 3306 -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS latchkey_check;
CREATE USER IF NOT EXISTS 'latchkey_pw_check'@'%' IDENTIFIED BY 'my-check-Secret-1';
ALTER USER 'latchkey_pw_check'@'%' IDENTIFIED BY 'my-check-Secret-1';
CREATE USER IF NOT EXISTS 'latchkey_pw_check'@'localhost' IDENTIFIED BY 'my-check-Secret-1';
ALTER USER 'latchkey_pw_check'@'localhost' IDENTIFIED BY 'my-check-Secret-1';
GRANT ALL ON latchkey_check.* TO 'latchkey_pw_check'@'%';
GRANT ALL ON latchkey_check.* TO 'latchkey_pw_check'@'localhost';
FLUSH PRIVILEGES;
SQL

# Redis (the Redis connection tests make and remove an ACL user of their own)
need_pkg redis-server redis-server
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 >/dev/null
  wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
fi
log "PostgreSQL, MariaDB and Redis are ready"
