//! Transports: TCP and TLS/TCP on tokio, behind one [`Stream`] type.
//!
//! # What is supported
//!
//! - **TCP** (RFC 6733 §2.1), with `TCP_NODELAY` set on every connection: Diameter messages
//!   are small request/answer pairs and Nagle's algorithm would add up to a round trip of
//!   delay to each.
//! - **TLS/TCP at connect** (RFC 6733 §13.1, the "TLS at connect" mode on port 5658 that
//!   replaces RFC 3588's in-band negotiation after CER/CEA), with rustls (TLS 1.2 and 1.3,
//!   ring). Both sides authenticate: RFC 6733 §13.1 "Diameter nodes using TLS/TCP … MUST
//!   mutually authenticate as part of TLS/TCP … session establishment. In order to ensure
//!   mutual authentication, the Diameter node acting as the TLS/TCP … server MUST request a
//!   certificate from the Diameter node acting as TLS/TCP … client, and the Diameter node
//!   acting as the TLS/TCP … client MUST be prepared to supply a certificate on request."
//!   The server therefore *requires* a client certificate chained to the configured CA
//!   ([`WebPkiClientVerifier`]), and the client verifies the server's chain and host name.
//!   After CER/CEA, [`Stream::verify_origin_host`] ties the peer's Origin-Host to a DNS
//!   name in its certificate ([`verify_peer_identity`]).
//! - **No cleartext fallback**: a [`Transport::Tls`] connect or accept either completes a
//!   mutually authenticated handshake or fails; nothing ever retries in the clear.
//!
//! # SCTP
//!
//! RFC 6733 §2.1 lets nodes use SCTP as well as TCP. This machine's kernel has no SCTP
//! (`socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)` fails with EPROTONOSUPPORT), so it is not
//! implemented. It would plug in as a `Transport::Sctp`-style variant producing a
//! `Stream::Sctp` (one-to-one style socket, one stream per association is enough for
//! Diameter's ordered delivery); everything above [`Stream`] — [`crate::framing`], the peer
//! driver, capture — is transport-agnostic and would not change. DTLS/SCTP likewise.
//!
//! # Deadlines
//!
//! Connect and TLS handshakes take a timeout here. A per-frame read deadline ("length
//! announced but the bytes never come", bad-inputs 5) lives with the framing:
//! [`crate::framing::read_frame`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// IANA port for Diameter over TCP and SCTP (RFC 6733 §11.2).
pub const DIAMETER_PORT: u16 = 3868;
/// IANA port for Diameter over TLS/TCP and DTLS/SCTP (RFC 6733 §11.2).
pub const DIAMETER_TLS_PORT: u16 = 5658;

/// How a connection is carried. The boundary where another transport (SCTP) would plug in.
#[derive(Clone)]
#[non_exhaustive]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS at connect over TCP, mutually authenticated.
    Tls(Arc<TlsConfig>),
}

impl Transport {
    /// The kind, without the configuration.
    pub fn kind(&self) -> TransportKind {
        match self {
            Self::Tcp => TransportKind::Tcp,
            Self::Tls(_) => TransportKind::Tls,
        }
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.kind(), f)
    }
}

/// Which transport a [`Stream`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl TransportKind {
    /// The IANA port a server of this kind listens on by default (RFC 6733 §11.2).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tcp => DIAMETER_PORT,
            Self::Tls => DIAMETER_TLS_PORT,
        }
    }
}

/// A connected byte stream, TCP or TLS, used uniformly by the driver
/// (`AsyncRead + AsyncWrite + Unpin + Send`).
#[non_exhaustive]
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP (client or server side); boxed, the TLS state is large.
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("kind", &self.kind())
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Tcp(s) => s,
            Self::Tls(s) => s.get_ref().0,
        }
    }

    /// TCP or TLS.
    pub fn kind(&self) -> TransportKind {
        match self {
            Self::Tcp(_) => TransportKind::Tcp,
            Self::Tls(_) => TransportKind::Tls,
        }
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    /// The peer's certificate chain (end entity first), for TLS.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match self {
            Self::Tcp(_) => None,
            Self::Tls(s) => s.get_ref().1.peer_certificates(),
        }
    }

    /// After CER/CEA: checks that the peer's Origin-Host is a DNS name its certificate was
    /// issued for (see [`verify_peer_identity`]). Over TCP there is nothing to check and the
    /// answer says so; whether cleartext peers are allowed at all is configuration.
    pub fn verify_origin_host(&self, origin_host: &str) -> Result<PeerIdentity, IdentityError> {
        match self {
            Self::Tcp(_) => Ok(PeerIdentity::Unauthenticated),
            Self::Tls(_) => {
                verify_peer_identity(self.peer_certificates().unwrap_or(&[]), origin_host)?;
                Ok(PeerIdentity::Certified)
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// What [`Stream::verify_origin_host`] established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum PeerIdentity {
    /// The Origin-Host is a DNS name in the peer's verified certificate.
    Certified,
    /// Cleartext transport: no identity to check.
    Unauthenticated,
}

// ---------------------------------------------------------------------------------------
// TLS configuration
// ---------------------------------------------------------------------------------------

/// Mutual-TLS configuration for both roles, built once from the node's CA, certificate
/// chain and private key.
#[derive(Clone)]
pub struct TlsConfig {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// Why TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A PEM file could not be read or parsed.
    #[error("{what} ({path}): {source}")]
    Pem {
        /// Which input ("CA file", "certificate chain", "private key").
        what: &'static str,
        /// Where it came from.
        path: String,
        /// What went wrong.
        source: rustls_pki_types::pem::Error,
    },
    /// The input held no certificate.
    #[error("{what} ({path}): no certificate found")]
    NoCertificates {
        /// Which input.
        what: &'static str,
        /// Where it came from.
        path: String,
    },
    /// A CA certificate was not acceptable as a trust anchor.
    #[error("CA certificate: {0}")]
    TrustAnchor(rustls::Error),
    /// The client-certificate verifier could not be built (e.g. no trust anchors).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the certificate chain or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs_from_iter<I>(
    iter: I,
    what: &'static str,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError>
where
    I: Iterator<Item = Result<CertificateDer<'static>, rustls_pki_types::pem::Error>>,
{
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem {
            what,
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificates {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn pem_file_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let shown = path.display().to_string();
    let iter = CertificateDer::pem_file_iter(path).map_err(|source| TlsConfigError::Pem {
        what,
        path: shown.clone(),
        source,
    })?;
    certs_from_iter(iter, what, &shown)
}

impl TlsConfig {
    /// Loads the CA bundle (trust anchors for peers), our certificate chain (end entity
    /// first) and our private key (PKCS#8, PKCS#1 or SEC1) from PEM files.
    pub fn from_pem_files(
        ca: &Path,
        cert_chain: &Path,
        key: &Path,
    ) -> Result<Self, TlsConfigError> {
        let ca = pem_file_certs(ca, "CA file")?;
        let chain = pem_file_certs(cert_chain, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsConfigError::Pem {
            what: "private key",
            path: key.display().to_string(),
            source,
        })?;
        Self::from_der(ca, chain, key)
    }

    /// As [`TlsConfig::from_pem_files`], from PEM text in memory.
    pub fn from_pem(ca: &[u8], cert_chain: &[u8], key: &[u8]) -> Result<Self, TlsConfigError> {
        let ca = certs_from_iter(CertificateDer::pem_slice_iter(ca), "CA file", "memory")?;
        let chain = certs_from_iter(
            CertificateDer::pem_slice_iter(cert_chain),
            "certificate chain",
            "memory",
        )?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|source| TlsConfigError::Pem {
            what: "private key",
            path: "memory".into(),
            source,
        })?;
        Self::from_der(ca, chain, key)
    }

    /// Builds both roles from DER: `ca` are the trust anchors that peers' chains must lead
    /// to; `cert_chain` and `key` are what we present.
    pub fn from_der(
        ca: Vec<CertificateDer<'static>>,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        for c in ca {
            roots.add(c).map_err(TlsConfigError::TrustAnchor)?;
        }
        let roots = Arc::new(roots);
        let provider = provider();

        // RFC 6733 §13.1: the TLS server "MUST request a certificate" from the client;
        // WebPkiClientVerifier without `allow_unauthenticated` also rejects a client that
        // sends none.
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(cert_chain.clone(), key.clone_key())?;

        // RFC 6733 §13.1: the client "MUST be prepared to supply a certificate on request".
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(cert_chain, key)?;

        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
        })
    }

    /// Builds from ready-made rustls configurations (for callers with special needs, and
    /// tests). The caller is responsible for them requiring mutual authentication.
    pub fn from_configs(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Self {
        Self { client, server }
    }

    /// The client-role configuration.
    pub fn client_config(&self) -> &Arc<ClientConfig> {
        &self.client
    }

    /// The server-role configuration.
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }
}

// ---------------------------------------------------------------------------------------
// Connect and accept
// ---------------------------------------------------------------------------------------

/// Why a connection could not be established.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The TCP connect failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Connect or handshake did not complete in time.
    #[error("{what} with {addr} timed out after {after:?}")]
    Timeout {
        /// "connect" or "TLS handshake".
        what: &'static str,
        /// The remote address.
        addr: SocketAddr,
        /// The timeout.
        after: Duration,
    },
    /// The TLS handshake failed (bad or missing certificate, wrong CA, wrong host name…).
    /// There is no cleartext fallback.
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        /// The remote address.
        addr: SocketAddr,
        /// The failure; see [`TransportError::tls_error`].
        source: io::Error,
    },
    /// The expected peer host name is not a valid DNS name.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// Another socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl TransportError {
    /// The rustls error behind a failed handshake, when there is one.
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        match self {
            Self::Handshake { source, .. } => source
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>()),
            _ => None,
        }
    }
}

fn tune(tcp: &TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)
}

/// Connects over TCP with `TCP_NODELAY`.
pub async fn connect_tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, TransportError> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| TransportError::Timeout {
            what: "connect",
            addr,
            after: timeout,
        })?
        .map_err(|source| TransportError::Connect { addr, source })?;
    tune(&tcp)?;
    Ok(tcp)
}

/// Connects to a peer. With [`Transport::Tls`], the server's chain must lead to our CA and
/// be valid for `peer_host` (normally the peer's configured DiameterIdentity); `timeout`
/// bounds the connect and the handshake separately.
pub async fn connect(
    addr: SocketAddr,
    transport: &Transport,
    peer_host: &str,
    timeout: Duration,
) -> Result<Stream, TransportError> {
    match transport {
        Transport::Tcp => Ok(Stream::Tcp(connect_tcp(addr, timeout).await?)),
        Transport::Tls(cfg) => {
            let name = ServerName::try_from(peer_host.to_owned())
                .map_err(|_| TransportError::InvalidServerName(peer_host.to_owned()))?;
            let tcp = connect_tcp(addr, timeout).await?;
            let tls = tokio::time::timeout(
                timeout,
                TlsConnector::from(cfg.client.clone()).connect(name, tcp),
            )
            .await
            .map_err(|_| TransportError::Timeout {
                what: "TLS handshake",
                addr,
                after: timeout,
            })?
            .map_err(|source| TransportError::Handshake { addr, source })?;
            Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
        }
    }
}

/// A listening socket for one transport.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    transport: Transport,
}

impl Listener {
    /// Binds `addr` (port 0 for an ephemeral port).
    pub async fn bind(addr: SocketAddr, transport: Transport) -> io::Result<Self> {
        Ok(Self {
            tcp: TcpListener::bind(addr).await?,
            transport,
        })
    }

    /// Wraps an already bound listener (tests bind port 0 and pass it in).
    pub fn from_tcp(tcp: TcpListener, transport: Transport) -> Self {
        Self { tcp, transport }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Accepts a TCP connection. The TLS handshake, if any, is left to
    /// [`Accepted::handshake`] so that the accept loop never waits on a slow client (spawn a
    /// task per connection; bad-inputs 43).
    pub async fn accept(&self) -> io::Result<Accepted> {
        let (tcp, peer) = self.tcp.accept().await?;
        tune(&tcp)?;
        let tls = match &self.transport {
            Transport::Tcp => None,
            Transport::Tls(cfg) => Some(TlsAcceptor::from(cfg.server.clone())),
        };
        Ok(Accepted { tcp, peer, tls })
    }
}

/// An accepted TCP connection whose TLS handshake (if any) has not run yet.
pub struct Accepted {
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Accepted {
    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Completes the connection: for TLS, runs the server handshake within `timeout`,
    /// requiring a client certificate chained to our CA.
    pub async fn handshake(self, timeout: Duration) -> Result<Stream, TransportError> {
        let addr = self.peer;
        match self.tls {
            None => Ok(Stream::Tcp(self.tcp)),
            Some(acceptor) => {
                let tls = tokio::time::timeout(timeout, acceptor.accept(self.tcp))
                    .await
                    .map_err(|_| TransportError::Timeout {
                        what: "TLS handshake",
                        addr,
                        after: timeout,
                    })?
                    .map_err(|source| TransportError::Handshake { addr, source })?;
                Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

/// Why a peer's certificate does not vouch for its Origin-Host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The TLS peer presented no certificate.
    #[error("peer presented no certificate")]
    NoCertificate,
    /// The end-entity certificate could not be parsed.
    #[error("peer certificate unreadable: {0}")]
    BadCertificate(String),
    /// The Origin-Host is not a syntactically valid DNS name, so no certificate can vouch
    /// for it.
    #[error("Origin-Host {0:?} is not a DNS name")]
    InvalidOriginHost(String),
    /// The certificate holds no DNS name (SAN) matching the Origin-Host.
    #[error("certificate is not valid for Origin-Host {origin_host:?}: {reason}")]
    Mismatch {
        /// The Origin-Host from CER/CEA.
        origin_host: String,
        /// webpki's reason.
        reason: String,
    },
}

/// Checks that `origin_host` (from the peer's CER or CEA) is a DNS name the peer's
/// end-entity certificate (`certs[0]`, already verified against our CA during the
/// handshake) was issued for, by its subjectAltName dNSName entries (RFC 6125 DNS-ID
/// matching, ASCII case-insensitive, wildcards as webpki allows them).
///
/// RFC 6733 §13.1 requires mutual authentication but leaves how a certificate maps to a
/// DiameterIdentity to the deployment; tying Origin-Host to the certificate is what stops a
/// peer holding a valid certificate from claiming another node's identity (bad-inputs 40;
/// DESIGN: "S9 peers are … tied to their certificate").
pub fn verify_peer_identity(
    certs: &[CertificateDer<'_>],
    origin_host: &str,
) -> Result<(), IdentityError> {
    let Some(ee) = certs.first() else {
        return Err(IdentityError::NoCertificate);
    };
    let name = DnsName::try_from(origin_host)
        .map_err(|_| IdentityError::InvalidOriginHost(origin_host.to_owned()))?;
    let cert = webpki::EndEntityCert::try_from(ee)
        .map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
    cert.verify_is_valid_for_subject_name(&ServerName::DnsName(name))
        .map_err(|e| IdentityError::Mismatch {
            origin_host: origin_host.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{DiameterCodec, Inbound, read_frame};
    use diameter_codec::MessageBuilder;
    use diameter_codec::dict::base;
    use futures::SinkExt;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::codec::Framed;

    const T: Duration = Duration::from_secs(10);

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    struct Pki {
        ca_pem: String,
        ca: CertifiedIssuer<'static, KeyPair>,
    }

    impl Pki {
        fn new(name: &str) -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            Self {
                ca_pem: ca.pem(),
                ca,
            }
        }

        /// (chain PEM, key PEM) for a leaf with one DNS SAN.
        fn leaf(&self, dns: &str) -> (String, String) {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, dns);
            let cert = params.signed_by(&key, &self.ca).unwrap();
            (cert.pem(), key.serialize_pem())
        }

        fn config(&self, dns: &str) -> Arc<TlsConfig> {
            let (chain, key) = self.leaf(dns);
            Arc::new(
                TlsConfig::from_pem(self.ca_pem.as_bytes(), chain.as_bytes(), key.as_bytes())
                    .unwrap(),
            )
        }
    }

    fn cer() -> MessageBuilder {
        MessageBuilder::request(257, 0, false)
            .ids(1, 1)
            .with(base::ORIGIN_HOST.with("client.example"))
            .with(base::ORIGIN_REALM.with("example"))
    }

    #[tokio::test]
    async fn tcp_round_trip_with_nodelay() {
        let listener = Listener::bind(loopback(), Transport::Tcp).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let acc = listener.accept().await.unwrap();
            let stream = acc.handshake(T).await.unwrap();
            assert_eq!(stream.kind(), TransportKind::Tcp);
            assert!(stream.tcp().nodelay().unwrap());
            let mut f = Framed::new(stream, DiameterCodec::default());
            let Some(Inbound::Message(m)) = read_frame(&mut f, T).await.unwrap() else {
                panic!()
            };
            f.send(m).await.unwrap();
        });
        let stream = connect(addr, &Transport::Tcp, "ignored.example", T)
            .await
            .unwrap();
        assert!(stream.tcp().nodelay().unwrap());
        assert!(stream.peer_certificates().is_none());
        assert_eq!(
            stream.verify_origin_host("x.example").unwrap(),
            PeerIdentity::Unauthenticated
        );
        let mut f = Framed::new(stream, DiameterCodec::default());
        f.send(&cer()).await.unwrap();
        let Some(Inbound::Message(echo)) = read_frame(&mut f, T).await.unwrap() else {
            panic!()
        };
        assert_eq!(echo.header().command_code, 257);
        server.await.unwrap();
    }

    /// Runs a server that accepts one connection and echoes one frame; returns its address
    /// and the accept result.
    async fn tls_server(
        cfg: Arc<TlsConfig>,
    ) -> (
        SocketAddr,
        tokio::task::JoinHandle<Result<Stream, TransportError>>,
    ) {
        let listener = Listener::bind(loopback(), Transport::Tls(cfg))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let h = tokio::spawn(async move { listener.accept().await.unwrap().handshake(T).await });
        (addr, h)
    }

    /// The handshake failed on the peer's certificate (bad issuer, name or chain).
    fn assert_invalid_certificate(err: &TransportError) {
        assert!(
            matches!(err.tls_error(), Some(rustls::Error::InvalidCertificate(_))),
            "{err:?} / {:?}",
            err.tls_error()
        );
    }

    #[tokio::test]
    async fn mutual_tls_round_trip_and_identity() {
        let pki = Pki::new("Test CA");
        let (addr, server) = tls_server(pki.config("server.example")).await;
        let client = connect(
            addr,
            &Transport::Tls(pki.config("client.example")),
            "server.example",
            T,
        )
        .await
        .unwrap();
        let srv = server.await.unwrap().unwrap();
        assert_eq!(client.kind(), TransportKind::Tls);

        // Each side checks the other's Origin-Host against the certificate.
        assert_eq!(
            srv.verify_origin_host("client.example").unwrap(),
            PeerIdentity::Certified
        );
        assert_eq!(
            srv.verify_origin_host("CLIENT.Example").unwrap(),
            PeerIdentity::Certified
        );
        assert!(matches!(
            srv.verify_origin_host("server.example"),
            Err(IdentityError::Mismatch { .. })
        ));
        assert!(matches!(
            srv.verify_origin_host("not a name"),
            Err(IdentityError::InvalidOriginHost(_))
        ));
        assert_eq!(
            client.verify_origin_host("server.example").unwrap(),
            PeerIdentity::Certified
        );
        assert!(matches!(
            client.verify_origin_host("pcrf.other.example"),
            Err(IdentityError::Mismatch { .. })
        ));

        // Diameter frames over it.
        let mut fc = Framed::new(client, DiameterCodec::default());
        let mut fs = Framed::new(srv, DiameterCodec::default());
        fc.send(&cer()).await.unwrap();
        let Some(Inbound::Message(m)) = read_frame(&mut fs, T).await.unwrap() else {
            panic!()
        };
        assert_eq!(m.get(base::ORIGIN_HOST).unwrap().unwrap(), "client.example");
        fs.send(m).await.unwrap();
        assert!(matches!(
            read_frame(&mut fc, T).await.unwrap(),
            Some(Inbound::Message(_))
        ));
    }

    #[tokio::test]
    async fn server_from_another_ca_is_rejected() {
        let (good, rogue) = (Pki::new("Good CA"), Pki::new("Rogue CA"));
        let (addr, server) = tls_server(rogue.config("server.example")).await;
        let err = connect(
            addr,
            &Transport::Tls(good.config("client.example")),
            "server.example",
            T,
        )
        .await
        .unwrap_err();
        assert_invalid_certificate(&err);
        assert!(server.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn client_from_another_ca_is_rejected() {
        let (good, rogue) = (Pki::new("Good CA"), Pki::new("Rogue CA"));
        let (addr, server) = tls_server(good.config("server.example")).await;
        // The rogue client trusts the good CA (so it accepts the server) but its own
        // certificate is issued by the rogue CA.
        let (chain, key) = rogue.leaf("client.example");
        let cfg =
            TlsConfig::from_pem(good.ca_pem.as_bytes(), chain.as_bytes(), key.as_bytes()).unwrap();
        let client = connect(addr, &Transport::Tls(Arc::new(cfg)), "server.example", T).await;
        let err = server.await.unwrap().unwrap_err();
        assert_invalid_certificate(&err);
        // TLS 1.3: the client may finish its side first, then sees the alert on read.
        if let Ok(mut c) = client {
            let mut b = [0u8; 1];
            assert!(!matches!(c.read(&mut b).await, Ok(1)));
        }
    }

    #[tokio::test]
    async fn client_without_certificate_is_rejected() {
        let pki = Pki::new("Test CA");
        let (addr, server) = tls_server(pki.config("server.example")).await;
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let anon = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let cfg =
            TlsConfig::from_configs(Arc::new(anon), pki.config("unused.example").server.clone());
        let client = connect(addr, &Transport::Tls(Arc::new(cfg)), "server.example", T).await;
        let err = server.await.unwrap().unwrap_err();
        assert!(
            matches!(
                err.tls_error(),
                Some(rustls::Error::NoCertificatesPresented)
            ),
            "{err:?} / {:?}",
            err.tls_error()
        );
        if let Ok(mut c) = client {
            let _ = c.write_all(b"x").await;
            let mut b = [0u8; 1];
            assert!(!matches!(c.read(&mut b).await, Ok(1)));
        }
    }

    #[tokio::test]
    async fn wrong_server_name_is_rejected_without_fallback() {
        let pki = Pki::new("Test CA");
        let (addr, server) = tls_server(pki.config("server.example")).await;
        let err = connect(
            addr,
            &Transport::Tls(pki.config("client.example")),
            "other.example",
            T,
        )
        .await
        .unwrap_err();
        assert_invalid_certificate(&err);
        assert!(server.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn cleartext_client_to_tls_server_fails() {
        let pki = Pki::new("Test CA");
        let (addr, server) = tls_server(pki.config("server.example")).await;
        let mut s = connect(addr, &Transport::Tcp, "", T).await.unwrap();
        s.write_all(&cer().to_bytes()).await.unwrap();
        assert!(matches!(
            server.await.unwrap(),
            Err(TransportError::Handshake { .. })
        ));
    }

    #[test]
    fn pem_files_load_and_errors_are_typed() {
        let pki = Pki::new("Test CA");
        let (chain, key) = pki.leaf("node.example");
        let dir = tempfile::tempdir().unwrap();
        let (ca_p, chain_p, key_p) = (
            dir.path().join("ca.pem"),
            dir.path().join("c.pem"),
            dir.path().join("k.pem"),
        );
        std::fs::write(&ca_p, &pki.ca_pem).unwrap();
        std::fs::write(&chain_p, &chain).unwrap();
        std::fs::write(&key_p, &key).unwrap();
        TlsConfig::from_pem_files(&ca_p, &chain_p, &key_p).unwrap();

        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            TlsConfig::from_pem_files(&missing, &chain_p, &key_p),
            Err(TlsConfigError::Pem {
                what: "CA file",
                ..
            })
        ));
        // A key file where the chain should be: no certificate in it.
        assert!(matches!(
            TlsConfig::from_pem_files(&ca_p, &key_p, &key_p),
            Err(TlsConfigError::NoCertificates {
                what: "certificate chain",
                ..
            })
        ));
        assert!(matches!(
            TlsConfig::from_pem_files(&ca_p, &chain_p, &chain_p),
            Err(TlsConfigError::Pem {
                what: "private key",
                ..
            })
        ));
    }

    #[test]
    fn identity_check_on_raw_certificates() {
        let pki = Pki::new("Test CA");
        let (chain, _) = pki.leaf("pcrf.home.example");
        let der = CertificateDer::from_pem_slice(chain.as_bytes()).unwrap();
        verify_peer_identity(std::slice::from_ref(&der), "pcrf.home.example").unwrap();
        assert!(matches!(
            verify_peer_identity(std::slice::from_ref(&der), "pcrf.visited.example"),
            Err(IdentityError::Mismatch { .. })
        ));
        assert_eq!(
            verify_peer_identity(&[], "pcrf.home.example"),
            Err(IdentityError::NoCertificate)
        );
        assert!(matches!(
            verify_peer_identity(&[CertificateDer::from(vec![1, 2, 3])], "pcrf.home.example"),
            Err(IdentityError::BadCertificate(_))
        ));
    }
}
