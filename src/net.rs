//! Outgoing URLs a user can configure (an Evolution server, for one) go through one guard. Once
//! several businesses share an installation, a URL pointing at loopback, a private range or a
//! link-local address would let one of them make Palaver call its neighbours' internal services
//! with Palaver's credentials (server-side request forgery). The guard refuses such addresses
//! unless the instance allows them (`channels.allow_private_urls`, for a laptop running
//! Evolution beside Palaver):
//!
//! - when the URL is accepted ([`UrlGuard::check`]): its host is resolved and every address it
//!   resolves to must be public;
//! - on every connection ([`UrlGuard::client`]): the HTTP client resolves names through the guard
//!   (so a name re-pointed at a private address later is refused when connecting), refuses IP
//!   literals that are not public, and follows no redirects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute http(s) URL with a host.
    #[error("must be an http:// or https:// URL with a host")]
    Malformed,
    /// Carries a user name or password (credentials go in their own fields).
    #[error("must not carry a user name or password")]
    UserInfo,
    /// The host does not resolve.
    #[error("the host `{0}` does not resolve")]
    Unresolvable(String),
    /// The host is, or resolves to, an address that is not public.
    #[error(
        "points to a private, loopback or link-local address ({0}); an instance administrator \
         can allow these with `channels.allow_private_urls`"
    )]
    NotPublic(IpAddr),
}

/// Checks outgoing URLs against the instance's policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlGuard {
    allow_private: bool,
}

impl UrlGuard {
    /// A guard; `allow_private` lets URLs reach any address.
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }

    /// Whether private addresses are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Checks the URL's form, and that its host is, or resolves only to, public addresses.
    pub async fn check(&self, url: &str) -> Result<reqwest::Url, UrlError> {
        let url = self.check_form(url)?;
        if self.allow_private {
            return Ok(url);
        }
        let host = url.host_str().ok_or(UrlError::Malformed)?;
        if literal(host).is_none() {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| UrlError::Unresolvable(host.to_owned()))?
                .collect();
            if addrs.is_empty() {
                return Err(UrlError::Unresolvable(host.to_owned()));
            }
            if let Some(bad) = addrs.iter().map(|a| a.ip()).find(|ip| !is_public(*ip)) {
                return Err(UrlError::NotPublic(bad));
            }
        }
        Ok(url)
    }

    /// Checks what can be checked without resolving: an absolute http(s) URL with a host and no
    /// user info, whose host, when it is an IP address, is public (unless allowed).
    pub fn check_form(&self, url: &str) -> Result<reqwest::Url, UrlError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| UrlError::Malformed)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(UrlError::Malformed);
        }
        let host = parsed.host_str().ok_or(UrlError::Malformed)?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        if !self.allow_private {
            if let Some(ip) = literal(host) {
                if !is_public(ip) {
                    return Err(UrlError::NotPublic(ip));
                }
            }
        }
        Ok(parsed)
    }

    /// An HTTP client for user-configured URLs: names resolve through the guard and redirects
    /// are not followed. (IP literals never reach a resolver: callers check URLs with
    /// [`UrlGuard::check_form`] before each request.)
    pub fn client(
        &self,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> reqwest::Result<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if self.allow_private {
            builder.build()
        } else {
            builder.dns_resolver(Arc::new(PublicOnly)).build()
        }
    }
}

/// An HTTP client for URLs from users and webhooks: every request's URL passes
/// [`UrlGuard::check_form`] and every name it resolves is checked on connection.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    guard: UrlGuard,
    client: reqwest::Client,
}

impl GuardedClient {
    /// A client under `guard`, with these timeouts.
    pub fn new(
        guard: UrlGuard,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> reqwest::Result<Self> {
        Ok(Self {
            guard,
            client: guard.client(timeout, connect_timeout)?,
        })
    }

    /// A request to `url`, when the guard lets it through.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> Result<reqwest::RequestBuilder, UrlError> {
        self.guard.check_form(url.as_str())?;
        Ok(self.client.request(method, url))
    }

    /// The guard.
    pub fn guard(&self) -> UrlGuard {
        self.guard
    }

    /// A client that lets every address through, for unit tests against local mock servers.
    #[cfg(test)]
    pub(crate) fn allowing_private() -> Self {
        Self::new(
            UrlGuard::new(true),
            Duration::from_secs(10),
            Duration::from_secs(5),
        )
        .expect("an HTTP client")
    }
}

/// The host as an IP address, when it is one (`[::1]` included).
fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Resolves with the system resolver and keeps public addresses only; a name with none fails.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("`{host}` resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, unique local),
/// shared (CGNAT), link-local, unspecified, broadcast, multicast, documentation, benchmarking or
/// reserved. IPv4 inside IPv6 (mapped, compatible, NAT64) is judged by the IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    // IPv4-compatible (::a.b.c.d, deprecated) likewise.
    if segments[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        let [.., hi, lo] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)) // documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_public_or_not() {
        let cases = [
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("93.184.216.34", true),
            ("127.0.0.1", false),
            ("127.8.9.10", false),
            ("10.0.0.5", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("169.254.169.254", false), // cloud metadata
            ("100.64.0.1", false),
            ("100.128.0.1", true),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("255.255.255.255", false),
            ("224.0.0.1", false),
            ("192.0.2.1", false),
            ("198.18.0.1", false),
            ("240.0.0.1", false),
            ("2606:4700:4700::1111", true),
            ("::1", false),
            ("::", false),
            ("fe80::1", false),
            ("fd00::1", false),
            ("fc00::1", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.1.2.3", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::808:808", true),
            ("::127.0.0.1", false),
        ];
        for (ip, public) in cases {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_to_private_hosts_are_refused_unless_allowed() {
        let guard = UrlGuard::new(false);
        let refused = [
            ("http://127.0.0.1:8080", "127.0.0.1"),
            ("http://[::1]:8080/x", "::1"),
            ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
            ("https://10.1.2.3", "10.1.2.3"),
            ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
        ];
        for (url, ip) in refused {
            assert_eq!(
                guard.check(url).await,
                Err(UrlError::NotPublic(ip.parse().unwrap())),
                "{url}"
            );
        }
        // A name is judged by what it resolves to.
        assert!(matches!(
            guard.check("http://localhost:8080").await,
            Err(UrlError::NotPublic(_))
        ));
        assert_eq!(
            guard.check("ftp://example.com").await,
            Err(UrlError::Malformed)
        );
        assert_eq!(
            guard.check("http://user:pw@example.com").await,
            Err(UrlError::UserInfo)
        );
        assert_eq!(guard.check("not a url").await, Err(UrlError::Malformed));
        // A public literal needs no resolution.
        assert!(guard.check("https://93.184.216.34/api").await.is_ok());
        let open = UrlGuard::new(true);
        assert!(open.check("http://127.0.0.1:8080").await.is_ok());
        assert!(open.check("http://localhost:8080").await.is_ok());
        assert_eq!(
            open.check("file:///etc/passwd").await,
            Err(UrlError::Malformed)
        );
    }

    #[tokio::test]
    async fn the_guarded_client_will_not_connect_to_private_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(500), listener.accept())
                .await
                .is_ok()
        });
        let client = UrlGuard::new(false)
            .client(Duration::from_secs(2), Duration::from_secs(1))
            .unwrap();
        // A name that resolves to loopback (as a rebinding name would, after it was checked).
        let err = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect() || err.is_request(), "{err}");
        assert!(!accepted.await.unwrap(), "no connection was made");
    }
}
