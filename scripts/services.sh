#!/usr/bin/env bash
# Start PostgreSQL and MariaDB when they are down, and wait until they answer.
# The commands are the ones this machine kind starts them with (see docs/development.md).
set -u
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
maria_up() { mariadb-admin -h 127.0.0.1 -P 3306 -u root --connect-timeout=2 ping >/dev/null 2>&1; }

if ! pg_up; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! maria_up; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
for _ in $(seq 1 60); do
  if pg_up && maria_up; then echo "services: PostgreSQL and MariaDB are up"; exit 0; fi
  sleep 1
done
pg_up || echo "services: PostgreSQL is not answering on 127.0.0.1:5432" >&2
maria_up || echo "services: MariaDB is not answering on 127.0.0.1:3306" >&2
exit 1
