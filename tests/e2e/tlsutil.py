"""A throwaway PKI for the TLS tests, made with the openssl CLI (OpenSSL 3.0:
no `x509 -not_before`, so the expired leaf is signed with `openssl ca
-startdate/-enddate` and a minimal CA config).

    root CA (self-signed, RSA-2048)
      └─ intermediate CA (RSA-2048, pathlen 0)
           ├─ rsa      leaf, RSA-2048,    DNS:localhost + IP:127.0.0.1  (CN "ringcast test rsa")
           ├─ ecdsa    leaf, ECDSA P-256, DNS:localhost + IP:127.0.0.1
           ├─ rsa_b    leaf, RSA-2048,    same names, other key/serial/CN ("ringcast test B": SIGHUP reload)
           ├─ expired  leaf, RSA-2048,    valid 2020-01-01..2020-01-02 only
           └─ wronghost leaf, RSA-2048,   DNS:example.invalid only

Every leaf comes as <name>.pem (leaf alone), <name>.chain.pem (leaf, then the
intermediate: what --tls-cert gets) and <name>.key (PKCS#8 PEM). Clients
trust ca.pem only, so a server that sends the leaf without its intermediate
fails verification.

`pki` is a session-scoped fixture returning a PKI object.
"""
import base64
import hashlib
import pathlib
import shutil
import ssl
import subprocess

import pytest

LEAF_NAMES = "DNS:localhost,IP:127.0.0.1"


def openssl(*args, cwd=None, input=None):
    r = subprocess.run(["openssl", *args], cwd=cwd, input=input, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return r.stdout


class Leaf:
    def __init__(self, d, name):
        self.name = name
        self.cert = d / f"{name}.pem"
        self.chain = d / f"{name}.chain.pem"
        self.key = d / f"{name}.key"

    def der(self):
        return ssl.PEM_cert_to_DER_cert(self.cert.read_text())

    def serial(self):
        return openssl("x509", "-in", str(self.cert), "-noout", "-serial").decode().strip().split("=", 1)[1]

    def spki_sha256_b64(self):
        """base64(sha256(SubjectPublicKeyInfo DER)): what Chromium's
        --ignore-certificate-errors-spki-list takes."""
        pub = openssl("x509", "-in", str(self.cert), "-noout", "-pubkey")
        der = openssl("pkey", "-pubin", "-outform", "DER", input=pub)
        return base64.b64encode(hashlib.sha256(der).digest()).decode()


class PKI:
    def __init__(self, d):
        self.dir = pathlib.Path(d)
        self.ca = self.dir / "ca.pem"
        self.ca_key = self.dir / "ca.key"
        self.inter = self.dir / "inter.pem"
        self.inter_key = self.dir / "inter.key"
        self._serial = 0x1000
        self._make_ca()
        self.rsa = self._leaf("rsa", "ringcast test rsa", LEAF_NAMES)
        self.ecdsa = self._leaf("ecdsa", "ringcast test ecdsa", LEAF_NAMES, ec=True)
        self.rsa_b = self._leaf("rsa_b", "ringcast test B", LEAF_NAMES)
        self.wronghost = self._leaf("wronghost", "example.invalid", "DNS:example.invalid")
        self.expired = self._expired_leaf("expired", "ringcast test expired", LEAF_NAMES)

    # -------------------------------------------------------- building blocks

    def _next_serial(self):
        self._serial += 1
        return f"0x{self._serial:x}"

    def _key(self, path, ec=False):
        if ec:
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
        else:
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))

    def _make_ca(self):
        d = self.dir
        self._key(self.ca_key)
        openssl("req", "-x509", "-new", "-key", str(self.ca_key), "-out", str(self.ca), "-days", "3650",
                "-subj", "/O=ringcast tests/CN=ringcast test root CA", "-set_serial", self._next_serial(),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-addext", "subjectKeyIdentifier=hash")
        self._key(self.inter_key)
        csr = d / "inter.csr"
        openssl("req", "-new", "-key", str(self.inter_key), "-out", str(csr),
                "-subj", "/O=ringcast tests/CN=ringcast test intermediate CA")
        ext = d / "inter.ext"
        ext.write_text("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                       "keyUsage=critical,keyCertSign,cRLSign\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
                "-set_serial", self._next_serial(), "-days", "3650", "-sha256", "-extfile", str(ext),
                "-out", str(self.inter))

    def _leaf_ext(self, name, names):
        ext = self.dir / f"{name}.ext"
        ext.write_text("basicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\n"
                       f"subjectAltName={names}\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
        return ext

    def _finish(self, leaf):
        leaf.chain.write_text(leaf.cert.read_text() + self.inter.read_text())
        return leaf

    def _leaf(self, name, cn, names, ec=False):
        leaf = Leaf(self.dir, name)
        self._key(leaf.key, ec=ec)
        csr = self.dir / f"{name}.csr"
        openssl("req", "-new", "-key", str(leaf.key), "-out", str(csr), "-subj", f"/O=ringcast tests/CN={cn}")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.inter), "-CAkey", str(self.inter_key),
                "-set_serial", self._next_serial(), "-days", "30", "-sha256",
                "-extfile", str(self._leaf_ext(name, names)), "-out", str(leaf.cert))
        return self._finish(leaf)

    def _expired_leaf(self, name, cn, names):
        """`openssl ca` is the one OpenSSL 3.0 command that takes an explicit
        validity window (-startdate/-enddate)."""
        leaf = Leaf(self.dir, name)
        self._key(leaf.key)
        csr = self.dir / f"{name}.csr"
        openssl("req", "-new", "-key", str(leaf.key), "-out", str(csr), "-subj", f"/O=ringcast tests/CN={cn}")
        cadir = self.dir / "ca-db"
        cadir.mkdir(exist_ok=True)
        (cadir / "index.txt").write_text("")
        (cadir / "serial").write_text(f"{self._serial + 1:x}\n")
        self._serial += 1
        cnf = cadir / "ca.cnf"
        cnf.write_text(f"""[ ca ]
default_ca = testca
[ testca ]
dir = {cadir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = {self.inter}
private_key = {self.inter_key}
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = leaf_ext
[ anything ]
organizationName = optional
commonName = supplied
[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {names}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
""")
        openssl("ca", "-batch", "-config", str(cnf), "-in", str(csr), "-out", str(leaf.cert), "-notext",
                "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
        return self._finish(leaf)

    def intermediate_spki(self):
        """base64 SHA-256 of the intermediate CA's SubjectPublicKeyInfo."""
        return Leaf(self.dir, "inter").spki_sha256_b64()

    # -------------------------------------------------------- client side

    def client_context(self):
        """What a careful client uses: TLS, verification against the test
        root only, hostname checked."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        return ctx

    def copy_leaf(self, leaf, dest_dir, stem="live"):
        """Copies leaf's chain and key to dest_dir/<stem>.chain.pem and
        <stem>.key (paths a server can be pointed at, then have replaced)."""
        dest_dir = pathlib.Path(dest_dir)
        chain, key = dest_dir / f"{stem}.chain.pem", dest_dir / f"{stem}.key"
        shutil.copyfile(leaf.chain, chain)
        shutil.copyfile(leaf.key, key)
        return chain, key


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))
