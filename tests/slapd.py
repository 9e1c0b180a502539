"""A real OpenLDAP server for tests and benchmarks: Debian's slapd (``make system-packages``
installs it) on a free port of 127.0.0.1, with a configuration and a database of its own in a
temporary directory, a random root password each run, and the directory a connector expects:

    dc=example,dc=test
      ou=people      users (inetOrgPerson)
      ou=groups      groups (groupOfNames)
      ou=services    cn=jitpam: the connector's bind account, which may write the ``member``
                     attribute of the entries under ou=groups and nothing else

``with SlapdServer() as server: ...`` starts it and stops it whatever happens.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import ldap3

SUFFIX = "dc=example,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SERVICES = f"ou=services,{SUFFIX}"
CONNECTOR_DN = f"cn=jitpam,{SERVICES}"
ROOT_DN = f"cn=admin,{SUFFIX}"
SLAPD = "/usr/sbin/slapd"
LDAPADD = "/usr/bin/ldapadd"
START_DEADLINE = 20.0

_CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema

pidfile {run}/slapd.pid
argsfile {run}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb

database mdb
suffix "{suffix}"
rootdn "{rootdn}"
rootpw "{rootpw}"
directory {run}/db
maxsize 33554432
index objectClass eq
index member eq
{tls}
# The connector's account writes the member values of groups and nothing else.
access to attrs=userPassword
    by self =w
    by anonymous auth
    by * none
access to dn.subtree="{groups}" attrs=member
    by dn.exact="{connector}" write
    by * read
access to *
    by * read
"""

_TREE = """\
dn: {suffix}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {people}
objectClass: organizationalUnit
ou: people

dn: {groups}
objectClass: organizationalUnit
ou: groups

dn: {services}
objectClass: organizationalUnit
ou: services

dn: {connector}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: jitpam
userPassword: {password}
"""


def _binary(path: str) -> str:
    if shutil.which(path) is None:
        package = "slapd" if path == SLAPD else "ldap-utils"
        raise RuntimeError(
            f"{path} is missing: the LDAP tests run Debian's {package}; "
            "`make system-packages` installs it"
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(run: Path) -> str:
    """A certificate for 127.0.0.1 that no authority signed, and its key, in ``run``: the
    slapd.conf lines that serve them."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    (run / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (run / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (run / "key.pem").chmod(0o600)
    return f"TLSCertificateFile {run}/cert.pem\nTLSCertificateKeyFile {run}/key.pem\n"


class SlapdServer:
    def __init__(self, *, tls: bool = False) -> None:
        """``tls``: also listen on ldaps:// (``ldaps_url``) with a self-signed certificate."""
        self.root_password = secrets.token_urlsafe(18)
        self.connector_password = secrets.token_urlsafe(18)
        self.port = 0
        self.tls_port = 0
        self._tls = tls
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def certificate(self) -> Path:
        """The self-signed certificate the ldaps:// port serves (``tls``)."""
        return Path(self._require_dir()) / "cert.pem"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def start(self) -> SlapdServer:
        """Start slapd and load the tree above; raises RuntimeError, naming the package, when
        slapd or ldapadd is not installed, or when slapd does not answer in time."""
        slapd, _ = _binary(SLAPD), _binary(LDAPADD)
        self._dir = tempfile.TemporaryDirectory(prefix="jitpam-slapd-")
        run = Path(self._dir.name)
        (run / "db").mkdir()
        conf = run / "slapd.conf"
        conf.write_text(
            _CONFIG.format(
                run=run,
                suffix=SUFFIX,
                rootdn=ROOT_DN,
                rootpw=self.root_password,
                groups=GROUPS,
                connector=CONNECTOR_DN,
                tls=_self_signed(run) if self._tls else "",
            ),
            encoding="utf-8",
        )
        conf.chmod(0o600)
        for _attempt in range(3):  # another process may take the free port first
            self.port = _free_port()
            listen = f"{self.url}/"
            if self._tls:
                self.tls_port = _free_port()
                listen += f" {self.ldaps_url}/"
            log = (run / "slapd.log").open("wb")
            self._process = subprocess.Popen(
                [slapd, "-f", str(conf), "-h", listen, "-d", "0"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            if self._wait_until_answering():
                break
            self._stop_process()
        else:
            output = (run / "slapd.log").read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"slapd did not start:\n{output}")
        self.ldapadd(
            _TREE.format(
                suffix=SUFFIX,
                people=PEOPLE,
                groups=GROUPS,
                services=SERVICES,
                connector=CONNECTOR_DN,
                password=self.connector_password,
            )
        )
        return self

    def _wait_until_answering(self) -> bool:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            try:
                with self.root():
                    return True
            except ldap3.core.exceptions.LDAPException:
                pass
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self._stop_process()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> SlapdServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @contextmanager
    def root(self) -> Iterator[ldap3.Connection]:
        """A connection bound as the root DN (the test's own hand, not the connector's),
        closed on leaving."""
        with self.bound(ROOT_DN, self.root_password) as conn:
            yield conn

    @contextmanager
    def bound(self, dn: str, password: str) -> Iterator[ldap3.Connection]:
        """A connection bound as ``dn``, closed on leaving; raises ldap3's LDAPException when
        the bind fails."""
        server = ldap3.Server(self.url, connect_timeout=2, get_info=ldap3.NONE)
        conn = ldap3.Connection(server, dn, password, receive_timeout=10)
        try:
            conn.open()
            if not conn.bind():
                raise ldap3.core.exceptions.LDAPBindError(conn.result["description"])
            yield conn
        finally:
            conn.unbind()
            if conn.socket is not None:  # ldap3 leaves the socket of a failed connect open
                conn.socket.close()

    def ldapadd(self, ldif: str) -> None:
        """Add the entries of ``ldif`` as the root DN, with ldap-utils' ldapadd."""
        password_file = Path(self._require_dir()) / "rootpw"
        password_file.write_text(self.root_password, encoding="utf-8")
        password_file.chmod(0o600)
        done = subprocess.run(
            [LDAPADD, "-x", "-H", self.url, "-D", ROOT_DN, "-y", str(password_file)],
            input=ldif.encode(),
            capture_output=True,
            check=False,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ldapadd failed: {done.stderr.decode(errors='replace')}")

    def _require_dir(self) -> str:
        if self._dir is None:
            raise RuntimeError("the server is not started")
        return self._dir.name

    def add(self, dn: str, object_classes: Iterable[str], attributes: Mapping[str, object]) -> None:
        """Add one entry as the root DN; raises AssertionError with the server's answer."""
        with self.root() as conn:
            assert conn.add(dn, list(object_classes), dict(attributes)), conn.result

    def members(self, group: str) -> list[str]:
        """The ``member`` values of ``group`` as the server returns them, sorted; [] when the
        group does not exist."""
        with self.root() as conn:
            conn.search(group, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["member"])
            if not conn.response:
                return []
            return sorted(str(v) for v in conn.response[0]["attributes"].get("member", []))
