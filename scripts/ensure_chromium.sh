#!/usr/bin/env bash
# Make sure Debian's Chromium (/usr/bin/chromium) and its ChromeDriver (/usr/bin/chromedriver)
# are installed: the UI browser tests (tests/e2e/test_ui_browser.py) drive a real headless Chromium.
# Idempotent: returns at once when both are already there.
set -euo pipefail

missing() {
    [[ ! -x /usr/bin/chromium ]] || [[ ! -x /usr/bin/chromedriver ]]
}

if ! missing; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "ensure_chromium: Chromium or ChromeDriver missing and not root: run as root, or" \
        "'sudo apt-get install -y chromium chromium-driver'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "ensure_chromium: Chromium or ChromeDriver missing and apt-get not found: install" \
        "chromium and chromium-driver with this system's package manager" >&2
    exit 1
fi

echo "ensure_chromium: installing chromium and chromium-driver" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null

if missing; then
    echo "ensure_chromium: apt-get finished but /usr/bin/chromium or /usr/bin/chromedriver" \
        "is still missing" >&2
    exit 1
fi
echo "ensure_chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)," \
    "$(/usr/bin/chromedriver --version 2>/dev/null | head -n1)" >&2
