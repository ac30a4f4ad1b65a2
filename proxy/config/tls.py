"""TLS: the inbound listener's certificate, and which authorities upstream certificates may
come from (the operating system's, plus a corporate CA bundle when configured)."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

from proxy.errors import ConfigError
from proxy.model import TlsFiles


def server_context(files: TlsFiles, *, path: str = "tls") -> ssl.SSLContext:
    """The inbound listener's context; a certificate or key that will not load is a
    ConfigError naming the key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # OpenSSL's error does not say which of the two files it could not open.
    for key, name in (("cert_file", files.cert_file), ("key_file", files.key_file)):
        try:
            Path(name).open("rb").close()
        except OSError as exc:
            raise ConfigError(f"{path}.{key}", f"cannot read {name}: {exc.strerror}") from exc
    try:
        context.load_cert_chain(files.cert_file, files.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            path,
            f"cannot load the certificate {files.cert_file} with the key {files.key_file}: "
            f"{exc.strerror or exc} (expected PEM files that belong together)",
        ) from exc
    return context


# Where the operating system verifies certificates itself, with authorities OpenSSL cannot
# read: the macOS Keychain and the Windows certificate store, where an IT department puts its
# TLS-inspecting proxy's CA (truststore asks them, as pip does). On Linux the system's store is
# the PEM bundle OpenSSL reads anyway, and truststore would read it again for every connection
# (some 30 ms on the event loop each time), so OpenSSL verifies as before.
_OS_VERIFIES = sys.platform in ("darwin", "win32")


def client_context(ca_file: str | None, *, path: str = "upstream_tls.ca_file") -> ssl.SSLContext:
    """Certificates are verified against the operating system's authorities (through truststore
    on macOS and Windows, when it is installed), and ``ca_file``'s too."""
    context = _system_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except FileNotFoundError as exc:
            raise ConfigError(path, f"cannot read {ca_file}: {exc.strerror}") from exc
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                path, f"{ca_file} holds no usable certificate ({exc}) (expected PEM)"
            ) from exc
    return context


def _system_context() -> ssl.SSLContext:
    if _OS_VERIFIES:
        try:
            import truststore
        except ImportError:  # an install without it trusts what OpenSSL finds, as before
            pass
        else:
            return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return ssl.create_default_context()
