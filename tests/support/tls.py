"""A private CA, a server certificate for 127.0.0.1 and a client certificate, as the deployments
make them, for tests that talk HTTPS to the real services and TLS to nsqd."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certificates:
    ca: Path  # what clients verify against
    cert: Path
    key: Path
    client_cert: Path  # what the services show nsqd
    client_key: Path

    def env(self) -> dict[str, str]:
        return {"TLS_CERT_FILE": str(self.cert), "TLS_KEY_FILE": str(self.key)}

    def nsq_env(self) -> dict[str, str]:
        return {"NSQ_TLS_CA_FILE": str(self.ca), "NSQ_TLS_CERT_FILE": str(self.client_cert),
                "NSQ_TLS_KEY_FILE": str(self.client_key)}


def client_context(ca: Path) -> ssl.SSLContext:
    """A client's context that trusts ``ca`` only."""
    return ssl.create_default_context(cafile=str(ca))


def nsq_client_context(certs: Certificates) -> ssl.SSLContext:
    """What the services use with NSQ_TLS_*: trusts ``certs.ca`` only, shows the client
    certificate."""
    context = client_context(certs.ca)
    context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return context


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _signed(ca_name: x509.Name, ca_key: ec.EllipticCurvePrivateKey, name: str,
            usage: x509.ObjectIdentifier,
            names: list[x509.GeneralName]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make(folder: Path) -> Certificates:
    """A CA, a server certificate it signed for 127.0.0.1 and localhost, and a client
    certificate it signed, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-face test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    loopback = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert, key = _signed(ca_name, ca_key, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, loopback)
    client, client_key = _signed(ca_name, ca_key, "kube-face services",
                                 ExtendedKeyUsageOID.CLIENT_AUTH, [])
    found = Certificates(folder / "ca.crt", folder / "server.crt", folder / "server.key",
                         folder / "client.crt", folder / "client.key")
    found.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for path, written in ((found.cert, cert), (found.client_cert, client)):
        path.write_bytes(written.public_bytes(serialization.Encoding.PEM))
    for path, private in ((found.key, key), (found.client_key, client_key)):
        path.write_bytes(_pem(private))
        path.chmod(0o600)
    return found
