#!/usr/bin/env bash
# moto's server (PyPI `moto[server]`) on 127.0.0.1, standing for AWS in the aws driver's tests (-m aws):
# CloudFormation, EC2 (images), RDS (snapshots), S3 and Route 53 behind one endpoint.
#
# Safe to run again: a server that already answers is reused. It keeps its state in memory, so the
# tests name what they make uniquely and delete it. Point boto3 (and the `aws` CLI) at it with
#   AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
# (port 5000 is Keystone's on the OpenStack test bed).
# Environment: DOPPEL_TEST_MOTO_PORT (default 5055).
set -euo pipefail
PORT=${DOPPEL_TEST_MOTO_PORT:-5055}
LOG=/var/log/doppel-moto.log
started=$SECONDS
answers() { curl -sf -o /dev/null "http://127.0.0.1:$PORT/moto-api/" ; }
if answers; then
  echo "moto.sh: moto's server already answers on 127.0.0.1:$PORT"
  exit 0
fi
python3 -c "import moto.server, flask_cors" 2>/dev/null || \
  python3 -m pip install -q --disable-pip-version-check 'moto[server]>=5' 2>&1 | grep -v -E "^WARNING: (Running pip as|Location)" || true
command -v aws >/dev/null || \
  python3 -m pip install -q --disable-pip-version-check awscli 2>&1 | grep -v -E "^WARNING: (Running pip as|Location)" || true
setsid nohup python3 -m moto.server -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 < /dev/null &
for _ in $(seq 1 100); do
  answers && { echo "moto.sh: moto's server ready on 127.0.0.1:$PORT ($((SECONDS - started))s)"; exit 0; }
  sleep 0.2
done
echo "moto.sh: moto's server did not answer on 127.0.0.1:$PORT; see $LOG" >&2
tail -20 "$LOG" >&2
exit 1
