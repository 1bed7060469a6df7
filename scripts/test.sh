#!/usr/bin/env bash
# The whole test suite: starts the local services it needs, then runs every crate's tests
# against SQLite, PostgreSQL and MariaDB. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-services.sh
bash scripts/install-chromium.sh
bash scripts/install-test-tools.sh

export LATCHKEY_TEST_POSTGRES_URL="${LATCHKEY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export LATCHKEY_TEST_MYSQL_URL="${LATCHKEY_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/mysql}"

cargo test --workspace --all-targets "$@"

# The Python and TypeScript clients, their examples and the MCP server, against live servers.
bash scripts/test-clients.sh
