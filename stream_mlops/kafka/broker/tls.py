"""The secured local broker's certificates: a private CA and one node certificate.

Made once, at the first ``broker start --secure`` of a data dir, with the
``cryptography`` package (pyca; the ``secure-broker`` extra), rather than with the
JDK's keytool: it writes PEM directly, which both Kafka (``ssl.keystore.type=PEM``)
and the Python clients read, and needs no keystore passwords or shell-outs.

* ``tls/ca.pem``: the CA certificate clients trust (``ssl_cafile``,
  ``ssl.ca.location``). Its private key is never written: nothing can mint further
  certificates for this broker, and a lost data dir loses nothing worth keeping.
* ``tls/node.pem``: the node's private key (PKCS#8) and certificate chain, 0600.
  Every node of a local cluster listens on 127.0.0.1, so one certificate, valid for
  ``localhost`` and ``127.0.0.1``, serves them all; it is also the client
  certificate the nodes present to each other's controller listener (mutual TLS),
  where its common name becomes the principal ``User:broker``.

Keys are ECDSA P-256: generated in milliseconds, and supported by Kafka's PEM
keystore (RSA, DSA and EC) and by OpenSSL on the client side.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from stream_mlops.kafka.broker.exceptions import BrokerError

#: The principal name the node certificate maps to (``ssl.principal.mapping.rules``).
NODE_COMMON_NAME = "broker"
CA_COMMON_NAME = "stream-mlops local broker CA"
# A development CA: long enough never to expire under a working checkout, and a
# fresh one is a `rm -r <data-dir>/tls` away.
VALIDITY = datetime.timedelta(days=3650)
_CRYPTOGRAPHY_HINT = (
    "the secured broker needs the cryptography package: pip install -e '.[secure-broker]'"
)


@dataclass(frozen=True)
class BrokerCertificates:
    """Where one data dir keeps its CA certificate and node key + chain."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def node_file(self) -> Path:
        return self.directory / "node.pem"

    def exist(self) -> bool:
        return self.ca_file.is_file() and self.node_file.is_file()

    def ensure(self) -> bool:
        """Generate the CA and node certificate unless both exist; True if generated."""
        if self.exist():
            return False
        ca_pem, node_pem = generate(NODE_COMMON_NAME, ("localhost",), ("127.0.0.1",))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        write_private(self.node_file, node_pem)
        # The CA certificate is public; written last, so exist() means both are whole.
        self.ca_file.write_bytes(ca_pem)
        return True


def generate(
    common_name: str, dns_names: tuple[str, ...], ip_addresses: tuple[str, ...]
) -> tuple[bytes, bytes]:
    """A new CA and a certificate it signed: (CA certificate PEM, key + chain PEM).

    The certificate is good for both ends of TLS (server and client authentication)
    and names ``dns_names`` and ``ip_addresses`` as subject alternative names, which is
    what hostname verification checks.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise BrokerError(_CRYPTOGRAPHY_HINT) from None

    now = datetime.datetime.now(datetime.UTC)
    # A minute of slack for clocks a little behind the one that signed.
    not_before, not_after = now - datetime.timedelta(minutes=1), now + VALIDITY

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = cert.public_bytes(pem) + ca_cert.public_bytes(pem)
    return ca_cert.public_bytes(pem), key_pem + chain


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read, created so from the start."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
