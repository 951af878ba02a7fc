#!/usr/bin/env bash
# Bring up everything geodispatch needs on a Debian 12 machine, idempotently:
#   Debian packages -> Python venv -> PostgreSQL + PostGIS (roles, databases) -> Mosquitto -> migrations.
# Safe to run again; quick when everything is already there. Run as root (or with sudo available).
# Honours GEODISPATCH_* variables; writes the values it chose into .env (read by the settings).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${GEODISPATCH_VENV:-$ROOT/.venv}
PGVER=15
MQTT_PORT=${GEODISPATCH_MQTT_PORT:-18830}
say() { printf '\033[1m[services]\033[0m %s\n' "$*"; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# --- 1. Debian packages ------------------------------------------------------------------------
PKGS="postgresql-$PGVER postgresql-$PGVER-postgis-3 postgresql-$PGVER-pgrouting mosquitto mosquitto-clients
      chromium python3-venv python3-dev build-essential ca-certificates
      osm2pgsql osmium-tool tilemaker libicu-dev pkg-config
      kamailio kamailio-utils-modules kamailio-extra-modules sip-tester"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  say "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  # Debian's postinst would start the system Mosquitto on 1883; we run our own on $MQTT_PORT.
  $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# --- 2. Python environment ---------------------------------------------------------------------
PY=${GEODISPATCH_PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment in $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing Python packages (pip install -e .[dev])"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".[dev]"
  touch "$stamp"
fi
scripts/fetch_assets.sh  # Leaflet for the dispatcher map (no CDN at run time)

# --- 3. PostgreSQL + PostGIS -------------------------------------------------------------------
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1}' | grep -qx "$PGVER"; then
  say "creating PostgreSQL $PGVER cluster 'main'"
  $SUDO pg_createcluster "$PGVER" main
fi
CLUSTER=$(pg_lsclusters -h | awk -v v="$PGVER" '$1==v {print $2; exit}')
PGPORT=$(pg_lsclusters -h | awk -v v="$PGVER" -v c="$CLUSTER" '$1==v && $2==c {print $3; exit}')
if ! pg_lsclusters -h | awk -v v="$PGVER" -v c="$CLUSTER" '$1==v && $2==c {print $4}' | grep -q online; then
  say "starting PostgreSQL $PGVER/$CLUSTER on port $PGPORT"
  $SUDO pg_ctlcluster "$PGVER" "$CLUSTER" start
fi
for _ in $(seq 1 30); do as_pg pg_isready -q -p "$PGPORT" && break; sleep 1; done
psql_su() { as_pg psql -p "$PGPORT" -v ON_ERROR_STOP=1 -qAt "$@"; }
role_sql() {  # name password superuser?
  echo "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$1') THEN
      CREATE ROLE $1 LOGIN PASSWORD '$2' $3;
    END IF; END \$\$;"
}
# The owner runs migrations (superuser here, so tamper tests can bypass triggers as an attacker
# with full database rights would); the application role only gets DML grants.
psql_su -c "$(role_sql geodispatch geodispatch SUPERUSER)"
psql_su -c "$(role_sql geodispatch_app geodispatch_app NOSUPERUSER)"
for db in geodispatch geodispatch_test; do
  if [ -z "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    say "creating database $db"
    psql_su -c "CREATE DATABASE $db OWNER geodispatch"
  fi
  psql_su -d "$db" -c "CREATE EXTENSION IF NOT EXISTS postgis; CREATE EXTENSION IF NOT EXISTS pgrouting;"
done

# --- 4. settings for the chosen ports ----------------------------------------------------------
touch .env
setenv() { grep -q "^$1=" .env && sed -i "s|^$1=.*|$1=$2|" .env || echo "$1=$2" >> .env; }
if [ -z "${GEODISPATCH_DATABASE_URL:-}" ]; then
  setenv GEODISPATCH_DATABASE_URL "postgresql+psycopg://geodispatch_app:geodispatch_app@127.0.0.1:$PGPORT/geodispatch"
  setenv GEODISPATCH_ADMIN_DATABASE_URL "postgresql+psycopg://geodispatch:geodispatch@127.0.0.1:$PGPORT/geodispatch"
fi
if [ -z "${GEODISPATCH_MQTT_URL:-}" ]; then
  setenv GEODISPATCH_MQTT_URL "mqtt://geodispatch-server:geodispatch-server@127.0.0.1:$MQTT_PORT"
fi

# --- 5. Mosquitto (our own instance, beside any system broker) ---------------------------------
"$VENV/bin/geodispatch" broker setup >/dev/null
MQTT_PORT=$("$VENV/bin/python" -c "from geodispatch.settings import get_settings as g; from urllib.parse import urlsplit as u; print(u(g().mqtt_url).port or 1883)")
PIDFILE=var/mosquitto/mosquitto.pid
port_owner() { ss -ltnpH "sport = :$MQTT_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  kill -HUP "$(cat "$PIDFILE")"   # reread password file and ACL
else
  other=$(port_owner || true)
  if [ -n "$other" ]; then
    if tr '\0' ' ' < "/proc/$other/cmdline" | grep -q 'var/mosquitto/mosquitto.conf'; then
      say "port $MQTT_PORT is held by another checkout's broker (pid $other): replacing it"
      kill "$other"; for _ in $(seq 1 50); do kill -0 "$other" 2>/dev/null || break; sleep 0.1; done
    else
      echo "[services] port $MQTT_PORT is in use by another program (pid $other);" \
           "set GEODISPATCH_MQTT_PORT (or GEODISPATCH_MQTT_URL) to a free port" >&2
      exit 1
    fi
  fi
  say "starting Mosquitto on 127.0.0.1:$MQTT_PORT"
  rm -f "$PIDFILE"
  mosquitto -c "$ROOT/var/mosquitto/mosquitto.conf" -d
  for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$MQTT_PORT") 2>/dev/null && break; sleep 0.1
  done
  (exec 3<>/dev/tcp/127.0.0.1/"$MQTT_PORT") 2>/dev/null || {
    echo "[services] Mosquitto did not start; see var/mosquitto/mosquitto.log" >&2; exit 1; }
fi

# --- 6. migrations -----------------------------------------------------------------------------
# (the test database is migrated by the test session itself, from an empty schema)
"$VENV/bin/geodispatch" db upgrade >/dev/null

# --- 7. the centre's log signing key (kept when it exists) ---------------------------------------
"$VENV/bin/geodispatch" log keygen >/dev/null
say "ready: PostgreSQL $PGVER/$CLUSTER on $PGPORT, Mosquitto on $MQTT_PORT, venv $VENV"
