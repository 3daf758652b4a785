#!/usr/bin/env bash
# Make sure OpenSSH's server (/usr/sbin/sshd) and client (sftp, ssh-keygen) are installed:
# the SFTP tests run a real sshd, because that is what merchants' files really meet.
# Idempotent: returns at once when both are already there.
set -euo pipefail

missing() {
    [[ ! -x /usr/sbin/sshd ]] || ! command -v sftp >/dev/null || ! command -v ssh-keygen >/dev/null
}

if ! missing; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "ensure_sshd: OpenSSH server/client missing and not root: run as root, or" \
        "'sudo apt-get install -y openssh-server openssh-client'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "ensure_sshd: OpenSSH server/client missing and apt-get not found: install" \
        "openssh-server and openssh-client with this system's package manager" >&2
    exit 1
fi

echo "ensure_sshd: installing openssh-server and openssh-client" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null

if missing; then
    echo "ensure_sshd: apt-get finished but /usr/sbin/sshd, sftp or ssh-keygen is still missing" >&2
    exit 1
fi
echo "ensure_sshd: $(/usr/sbin/sshd -V 2>&1 | head -n1)" >&2
