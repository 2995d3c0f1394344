#!/usr/bin/env bash
# schemathesis (PyPI, pinned in .ci/schemathesis-requirements.txt) over the
# OpenAPI document of a running example server: every operation, every check
# (`--checks all`), with an admin token. Fails on any failure. Run from
# anywhere: `bash .ci/schemathesis.sh [extra schemathesis flags]`.
#
# Needs python3 with venv; the virtualenv is kept in target/schemathesis-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/schemathesis-requirements.txt
fi
token="schemathesis-admin-token-0123456789"
# A 1 GiB budget and a 64 MiB ballast cap: ballasts the fuzzer asks for stay
# far from the pressure levels that refuse work (a 503 fails the run).
server_env=()
server_args=(--admin-token "$token" --memory-budget 1GiB --max-ballast 64MiB
    --buffer-pool-pages 256)
source .ci/server_start.sh

mkdir -p target/schemathesis
"$venv/bin/schemathesis" --config-file .ci/schemathesis.toml run "$url/api/v1/openapi.json" \
    --checks all -H "Authorization: Bearer $token" \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-15}" --seed "${SCHEMATHESIS_SEED:-20}" \
    --generation-database none --no-color \
    --report junit --report-dir target/schemathesis "$@"
