#!/bin/bash
# Setup of the merchants' SFTP server for review-ingest. atmoz/sftp runs every executable file of
# /etc/sftp.d/ at each start of its container, after creating the users of users.conf and before
# starting sshd. Idempotent.
set -Eeuo pipefail

pipeline_user=review-ingest
host_keys=/etc/ssh/host-keys

log() { echo "[sftp.d/review-ingest] $*" >&2; }

# 1. Host keys (sshd_config reads them from $host_keys, a folder mounted from the host): made
#    here only when missing, i.e. when they were not generated beforehand as deploy/README.md says.
mkdir -p "$host_keys"
if [[ ! -f "$host_keys/ssh_host_ed25519_key" ]]; then
    log "generating $host_keys/ssh_host_ed25519_key"
    ssh-keygen -q -t ed25519 -N '' -C sftp -f "$host_keys/ssh_host_ed25519_key"
fi
if [[ ! -f "$host_keys/ssh_host_rsa_key" ]]; then
    log "generating $host_keys/ssh_host_rsa_key"
    ssh-keygen -q -t rsa -b 4096 -N '' -C sftp -f "$host_keys/ssh_host_rsa_key"
fi
chmod 600 "$host_keys"/ssh_host_*_key

# 2. Public keys: /etc/sftp/authorized_keys/<user>.pub for the merchants, and the pipeline's key.
#    sshd wants ~/.ssh owned by root or the user, and authorized_keys owned by the user, 0600.
install_keys() {
    local user=$1 source=$2
    install -d -o root -g root -m 755 "/home/$user/.ssh"
    install -o "$user" -g "$(id -g "$user")" -m 600 "$source" "/home/$user/.ssh/authorized_keys"
}
for key in /etc/sftp/authorized_keys/*.pub; do
    [[ -e "$key" ]] || continue
    user=$(basename "$key" .pub)
    if id "$user" >/dev/null 2>&1; then
        install_keys "$user" "$key"
    else
        log "WARNING: $key: no user '$user' in users.conf, key ignored"
    fi
done
install_keys "$pipeline_user" /etc/sftp/pipeline_key.pub

# 3. The pipeline (group `users`) moves each file out of a merchant's inbox and creates
#    orders/processed and orders/rejected in it: inboxes are writable by the group, and setgid so
#    that what is created there stays in the group. What the pipeline writes is world-readable
#    (sshd's umask 022), so the merchant can read its reports.
for inbox in /home/*/orders; do
    [[ -d "$inbox" ]] || continue
    chgrp users "$inbox"
    chmod 2775 "$inbox"
done
