"""A real OpenSSH ``sshd`` on 127.0.0.1, one chrooted SFTP user per merchant.

The SFTP tests must meet what merchants' files really meet: OpenSSH's ``internal-sftp`` behind
``ChrootDirectory``, a pinned host key and key-only logins. So this starts ``/usr/sbin/sshd -D -e``
with its own config and host key, creates one real Unix user ``ri_<merchant>`` per test merchant
and uploads with the real ``sftp`` client. It needs root (users, chroots) and
``scripts/ensure_sshd.sh``.

``ChrootDirectory`` wants every component of the path root-owned and not writable by group or
others, which rules out ``/tmp`` and ``/var/tmp`` (mode 1777): chroots live under
``/var/lib/review-ingest-sftp/<random>/``.

A killed test run cannot clean up: its sshd (orphaned, still listening), its folder and its
``ri_*`` users stay. Each session starts by removing what such runs left (``cleanup_stale``),
while other sessions may be running in the same tree with their own live server: each workdir
holds ``owner.json`` (the pytest process and its start time); a workdir whose owner is gone is
stale, its sshd processes (found by their ``-f <workdir>/sshd_config`` argument, no other sshd)
are killed and the folder removed; ``ri_*`` users that no live workdir authorizes are deleted.
Workdirs of older fixture versions have no owner file: they count as live while their sshd runs
under a live Python parent, or while their log was written recently.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tests.kit.processes import HOST, free_port, kill_tree, log_tail, poll, port_open, start_group

SSHD = "/usr/sbin/sshd"
BASE_DIR = Path("/var/lib/review-ingest-sftp")
#: ``ri_`` + id must fit Linux's 32-character user names.
_TEST_MERCHANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,28}$")
#: Characters the helper cannot pass safely through ``sftp -b`` (quoting and glob).
_BATCH_UNSAFE = re.compile(r'["\\*?\[\]\n\r]')
_LISTENING = "Server listening on"
_WAIT_SECONDS = 15.0
OWNER_FILE = "owner.json"
#: Held exclusively while stale runs are cleaned up and a workdir is made, shared while a user is
#: created and authorized: a cleanup never deletes a user between those two steps.
LOCK_FILE = BASE_DIR / ".fixture.lock"
#: A workdir of an older fixture version (no owner file) whose sshd is not running (stopped by a
#: test, or its run killed) counts as live while its log is younger than this.
_LEGACY_QUIET_SECONDS = 600.0


@dataclass(frozen=True)
class SftpMerchant:
    """A merchant's SFTP account: its Unix user, client key and chroot."""

    merchant_id: str
    username: str
    key_path: Path
    chroot: Path

    @property
    def root(self) -> str:
        """The merchant's folder as the merchant sees it inside its chroot."""
        return f"/{self.merchant_id}"

    @property
    def inbox(self) -> str:
        return f"{self.root}/orders"

    def local(self, remote_path: str) -> Path:
        """The local path of ``remote_path`` (absolute, as seen inside the chroot)."""
        parts = PurePosixPath(remote_path).parts
        if not remote_path.startswith("/") or ".." in parts:
            raise ValueError(f"not an absolute chroot path: {remote_path!r}")
        return self.chroot.joinpath(*parts[1:])


class SftpServer:
    """One sshd on a free loopback port, in its own folder; see the module docstring."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.host = HOST
        self.port = free_port()
        self._config = workdir / "sshd_config"
        self._log = workdir / "sshd.log"
        self._keys_dir = workdir / "authorized_keys"
        self._clients_dir = workdir / "client_keys"
        self._chroots_dir = workdir / "chroots"
        for folder in (self._keys_dir, self._clients_dir, self._chroots_dir):
            folder.mkdir(mode=0o755)
        host_key = workdir / "ssh_host_ed25519_key"
        _keygen(host_key)
        self._host_key_path = host_key
        #: The server's public key, ``"ssh-ed25519 AAAA..."`` (no comment).
        self.host_key_pub = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
        self._known_hosts = workdir / "known_hosts"
        self._known_hosts.write_text(f"[{HOST}]:{self.port} {self.host_key_pub}\n")
        self._merchants: dict[str, SftpMerchant] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start sshd (no-op when running) and wait until it listens."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._write_config()
        before = self._listening_count()
        # Not tied to this process: what a killed run leaves, cleanup_stale removes.
        self._proc = start_group(
            [SSHD, "-D", "-e", "-f", str(self._config)], self._log, orphan_ok=True
        )
        self._wait_listening(before)

    def stop(self) -> None:
        """Kill sshd and its open sessions, as a crash would, then wait until the port refuses.

        Each session is a child of sshd in a session of its own (sshd calls setsid), so a
        process-group kill misses them: the whole tree is killed by pid (``kill_tree``).
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            kill_tree(proc.pid)
        proc.wait()
        if poll(lambda: port_open(self.port), lambda open_: not open_, timeout=_WAIT_SECONDS):
            raise RuntimeError(f"sshd stopped but port {self.port} still accepts connections")

    def close(self) -> None:
        """Stop sshd and remove every file of this server (the Unix users stay)."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- merchants ---------------------------------------------------------------------------

    def add_merchant(self, merchant_id: str) -> SftpMerchant:
        """The merchant's user, key and chroot, with an empty ``/<merchant>/orders/``.

        Asked again for the same merchant (a later test), it empties that folder again.
        """
        if merchant_id in self._merchants:
            merchant = self._merchants[merchant_id]
            _empty_folder(merchant.local(merchant.root), keep={"orders"})
            _empty_folder(merchant.local(merchant.inbox), keep=set())
            return merchant
        if not _TEST_MERCHANT_ID.match(merchant_id):
            raise ValueError(f"test merchant id {merchant_id!r}: [a-z0-9][a-z0-9_-]{{0,28}}")
        username = f"ri_{merchant_id}"
        key_path = self._clients_dir / merchant_id
        _keygen(key_path)
        with _lock(fcntl.LOCK_SH):  # authorized before a cleanup can see the user unused
            user = _ensure_user(username)
            (self._keys_dir / username).write_text(key_path.with_suffix(".pub").read_text())
            (self._keys_dir / username).chmod(0o644)
        chroot = self._chroots_dir / merchant_id
        chroot.mkdir(mode=0o755)
        for folder in (chroot / merchant_id, chroot / merchant_id / "orders"):
            folder.mkdir(mode=0o755)
            os.chown(folder, user.pw_uid, user.pw_gid)
        merchant = SftpMerchant(merchant_id, username, key_path, chroot)
        self._merchants[merchant_id] = merchant
        self._reload()
        return merchant

    def airflow_conn_json(self, merchant: SftpMerchant) -> str:
        """The value of ``AIRFLOW_CONN_<ID>`` for an SFTP connection to this server.

        ``host_key`` is the whole ``"ssh-ed25519 AAAA..."``: SSHHook reads a bare base64 value
        as an RSA key. ``look_for_keys`` off so paramiko offers only ``key_file``.
        """
        extra = {
            "key_file": str(merchant.key_path),
            "host_key": self.host_key_pub,
            "look_for_keys": "false",
        }
        return json.dumps(
            {
                "conn_type": "sftp",
                "host": self.host,
                "port": self.port,
                "login": merchant.username,
                "extra": extra,
            }
        )

    # -- the real OpenSSH client, as a merchant uses it -------------------------------------

    def sftp_batch(self, merchant: SftpMerchant, commands: str) -> subprocess.CompletedProcess[str]:
        """Run ``sftp -b -`` as the merchant; batch mode stops at the first failing command."""
        args = [
            "sftp",
            "-b",
            "-",
            "-F",
            "/dev/null",
            "-i",
            str(merchant.key_path),
            "-P",
            str(self.port),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self._known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            f"{merchant.username}@{self.host}",
        ]
        return subprocess.run(
            args, input=commands, capture_output=True, text=True, timeout=60, check=False
        )

    def upload(
        self, merchant: SftpMerchant, remote_path: str, data: bytes, mtime: float | None = None
    ) -> None:
        """Upload ``data`` with the real sftp client; ``mtime`` then backdates it on disk."""
        with tempfile.NamedTemporaryFile(dir=self.workdir, suffix=".upload") as local:
            local.write(data)
            local.flush()
            self._run_ok(merchant, f"put {local.name} {_batch_quote(remote_path)}\n")
        if mtime is not None:
            os.utime(merchant.local(remote_path), (mtime, mtime))

    def fetch(self, merchant: SftpMerchant, remote_path: str) -> bytes:
        """Download a file with the real sftp client: proves the merchant can read it."""
        with tempfile.TemporaryDirectory(dir=self.workdir) as folder:
            target = Path(folder) / "fetched"
            self._run_ok(merchant, f"get {_batch_quote(remote_path)} {target}\n")
            return target.read_bytes()

    def _run_ok(self, merchant: SftpMerchant, commands: str) -> None:
        result = self.sftp_batch(merchant, commands)
        if result.returncode != 0:
            raise RuntimeError(
                f"sftp as {merchant.username} failed ({result.returncode}): "
                f"{result.stderr.strip()}\n{self._log_tail()}"
            )

    # -- internals ---------------------------------------------------------------------------

    def _write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            f"ListenAddress {HOST}",
            f"HostKey {self._host_key_path}",
            "PidFile none",
            f"AuthorizedKeysFile {self._keys_dir}/%u",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin no",
            "Subsystem sftp internal-sftp",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTTY no",
            "PermitTunnel no",
            "LogLevel INFO",
        ]
        if self._merchants:
            lines.append("AllowUsers " + " ".join(m.username for m in self._merchants.values()))
        for merchant in self._merchants.values():
            lines += [
                f"Match User {merchant.username}",
                f"    ChrootDirectory {merchant.chroot}",
                "    ForceCommand internal-sftp",
                "    AllowTcpForwarding no",
                "    X11Forwarding no",
                "    PermitTTY no",
            ]
        self._config.write_text("\n".join(lines) + "\n")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        check = subprocess.run(
            [SSHD, "-t", "-f", str(self._config)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejects {self._config}: {check.stderr.strip()}")

    def _reload(self) -> None:
        """Apply a new config; SIGHUP (not a restart) keeps other merchants' sessions alive."""
        if self._proc is None or self._proc.poll() is not None:
            self._write_config()  # validated now; start() uses it
            return
        self._write_config()
        before = self._listening_count()
        self._proc.send_signal(signal.SIGHUP)
        self._wait_listening(before)

    def _listening_count(self) -> int:
        if not self._log.exists():
            return 0
        return self._log.read_text(errors="replace").count(_LISTENING)

    def _wait_listening(self, before: int) -> None:
        """Wait for a new "Server listening" line (the new config is loaded), then a banner.

        sshd logs that line before it installs its SIGHUP handler: a SIGHUP in between would
        kill it. A banner comes from a connection it accepted, after the handlers are set.
        """

        def listening() -> bool:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"sshd exited\n{self._log_tail()}")
            return self._listening_count() > before and _sends_banner(self.port)

        if not poll(listening, timeout=_WAIT_SECONDS):
            raise RuntimeError(f"sshd not listening on {self.port}\n{self._log_tail()}")

    def open_client_connections(self) -> int:
        """This process's TCP connections to the server that are still open.

        paramiko closes a transport from its own thread, a moment after ``close()``: a
        count above zero is polled briefly before it is believed.
        """
        import psutil

        def count() -> int:
            return sum(
                1
                for c in psutil.Process().net_connections(kind="tcp")
                if c.raddr and c.raddr.port == self.port and c.status == psutil.CONN_ESTABLISHED
            )

        return poll(count, lambda open_: open_ == 0, timeout=_WAIT_SECONDS)

    def log_count(self, text: str, at_least: int = 0) -> int:
        """How many lines of sshd's log hold ``text`` (what the server saw of its clients),
        waiting a moment for ``at_least`` of them: sshd logs a closed session after the fact."""

        def found() -> int:
            lines = self._log.read_text(errors="replace").splitlines() if self._log.exists() else []
            return sum(text in line for line in lines)

        return poll(found, lambda count: count >= at_least, timeout=_WAIT_SECONDS)

    def _log_tail(self) -> str:
        return log_tail(self._log, 20, "(no sshd log)")


def _sends_banner(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _empty_folder(folder: Path, keep: set[str]) -> None:
    for child in folder.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _ensure_user(username: str) -> pwd.struct_passwd:
    """A system user with no password and no shell; unlocked, as ``UsePAM no`` requires.

    sshd without PAM refuses even key logins for an account whose password starts with ``!``
    (what ``useradd`` leaves): the password is set to ``*`` (no password, not locked).
    """
    for _attempt in range(20):
        try:
            user = pwd.getpwnam(username)
            break
        except KeyError:
            pass
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--password",
                "*",
                username,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 9, 10):  # 9: exists (a concurrent run); 10: locked
            raise RuntimeError(f"useradd {username} failed: {result.stderr.strip()}")
        time.sleep(0.1 if result.returncode == 10 else 0)
    else:
        raise RuntimeError(f"could not create user {username}")
    if _password_locked(username):
        subprocess.run(["usermod", "--password", "*", username], check=True, capture_output=True)
    return user


def _password_locked(username: str) -> bool:
    for line in Path("/etc/shadow").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == username:
            return fields[1].startswith("!")
    return False


def _batch_quote(path: str) -> str:
    """Quote a path for ``sftp -b``; refuse what would need glob escaping."""
    if _BATCH_UNSAFE.search(path):
        raise ValueError(f"path not supported by the sftp batch helper: {path!r}")
    return f'"{path}"'


def new_workdir() -> Path:
    """A fresh folder under BASE_DIR; every component root-owned, mode 755 (chroot rules)."""
    BASE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chown(BASE_DIR, 0, 0)
    BASE_DIR.chmod(0o755)
    workdir = Path(tempfile.mkdtemp(dir=BASE_DIR))
    workdir.chmod(0o755)
    return workdir


def new_server() -> SftpServer:
    """A server in a new workdir owned by this process (``owner.json``)."""
    with _lock(fcntl.LOCK_EX):
        workdir = new_workdir()
        _write_owner(workdir)
    return SftpServer(workdir)


# -- what killed runs left ----------------------------------------------------------------------


@dataclass
class Cleaned:
    workdirs: list[Path]
    sshd_pids: list[int]
    users: list[str]


def cleanup_stale(base: Path = BASE_DIR) -> Cleaned:
    """Remove what killed test runs left under ``base``: stale workdirs (see the module
    docstring), the sshd processes serving them and the ``ri_*`` users no live workdir uses."""
    cleaned = Cleaned([], [], [])
    if not base.is_dir():
        return cleaned
    with _lock(fcntl.LOCK_EX):
        live: list[Path] = []
        for workdir in sorted(p for p in base.iterdir() if p.is_dir()):
            if _is_live(workdir):
                live.append(workdir)
                continue
            cleaned.sshd_pids += _kill_sshd_of(workdir)
            shutil.rmtree(workdir, ignore_errors=True)
            cleaned.workdirs.append(workdir)
        in_use = {key.name for workdir in live for key in (workdir / "authorized_keys").glob("*")}
        for user in pwd.getpwall():
            if user.pw_name.startswith("ri_") and user.pw_name not in in_use:
                done = subprocess.run(
                    ["userdel", user.pw_name], capture_output=True, text=True, check=False
                )
                if done.returncode == 0:
                    cleaned.users.append(user.pw_name)
    return cleaned


def _write_owner(workdir: Path) -> None:
    from review_ingest.sources.claims import process_start

    pid = os.getpid()
    tmp = workdir / f".{OWNER_FILE}.tmp"
    tmp.write_text(json.dumps({"pid": pid, "started": process_start(pid)}))
    os.replace(tmp, workdir / OWNER_FILE)


def _is_live(workdir: Path) -> bool:
    from review_ingest.sources.claims import process_alive

    try:
        owner = json.loads((workdir / OWNER_FILE).read_text())
    except FileNotFoundError:
        owner = None
    except (OSError, ValueError):
        return True  # being written or unreadable: not ours to judge
    if owner is not None:
        return process_alive(int(owner["pid"]), owner.get("started"))
    # An older fixture version: live while its sshd runs under a live Python process (a killed
    # run's sshd is adopted by init), or, its sshd stopped by a test, while its log is fresh.
    servers = _sshd_of(workdir)
    if servers:
        return any(
            parent not in (None, 1) and "python" in _exe(parent) for parent in map(_parent, servers)
        )
    newest = max(
        (p.stat().st_mtime for p in (workdir, workdir / "sshd.log") if p.exists()), default=0
    )
    return time.time() - newest < _LEGACY_QUIET_SECONDS


def _sshd_of(workdir: Path) -> list[int]:
    """The sshd processes started with this workdir's config, never another sshd: the
    executable is sshd and ``-f <workdir>/sshd_config`` is in its command line (sshd rewrites
    it as one title, ``sshd: /usr/sbin/sshd -D -e -f <config> [listener] ...``)."""
    config = str(workdir / "sshd_config")
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(entry / "exe") != SSHD:
                continue
            words = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().split()
        except (OSError, UnicodeDecodeError):  # gone, a zombie, or not ours to read
            continue
        pairs = zip(words, words[1:], strict=False)
        if any(flag == "-f" and value == config for flag, value in pairs):
            found.append(int(entry.name))
    return found


def _kill_sshd_of(workdir: Path) -> list[int]:
    """SIGKILL this workdir's sshd processes and their sessions (sessions run in sessions of
    their own: found as descendants, as ``stop`` does)."""
    killed = _sshd_of(workdir)
    for pid in killed:
        kill_tree(pid)
    return killed


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _exe(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


@contextlib.contextmanager
def _lock(kind: int) -> Iterator[None]:
    BASE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, kind)
        yield
