//! Which peers may speak for the client (X-Forwarded-*, RFC 7239 Forwarded), and what
//! they say.

use std::net::IpAddr;

/// The networks listed in `--forwarded-allow-ips`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    everyone: bool,
    networks: Vec<(IpAddr, u8)>,
    /// The single addresses among `networks`, as text: a peer spelled that way (as the
    /// socket layer spells it) is known without parsing its address.
    addresses: Vec<String>,
    names: Vec<String>,
}

fn parse_network(item: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match item.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits.parse::<u8>().ok()?)),
        None => (item, None),
    };
    let ip: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn in_network(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V4(_)) => ip
            .to_ipv4_mapped()
            .is_some_and(|v4| in_network(IpAddr::V4(v4), (net, bits))),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

impl TrustedProxies {
    /// Parse a comma-separated list of IPs, CIDR networks, literal names (e.g. a unix socket
    /// path) or `*`.
    pub fn parse(spec: &str) -> Self {
        let mut trusted = Self::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                trusted.everyone = true;
            } else if let Some(network) = parse_network(item) {
                let (ip, bits) = network;
                if bits == if ip.is_ipv4() { 32 } else { 128 } {
                    trusted.addresses.push(ip.to_string());
                }
                trusted.networks.push(network);
            } else {
                trusted.names.push(item.to_owned());
            }
        }
        trusted
    }

    pub fn trusts(&self, host: &str) -> bool {
        if self.everyone || self.addresses.iter().any(|address| address == host) {
            return true;
        }
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => self.networks.iter().any(|&net| in_network(ip, net)),
            Err(_) => self.names.iter().any(|name| name == host),
        }
    }
}

/// What trusted proxy headers say about the original request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub client: Option<String>,
    pub scheme: Option<&'static str>,
}

fn scheme_of(value: &str) -> Option<&'static str> {
    match value.trim().to_ascii_lowercase().as_str() {
        "http" => Some("http"),
        "https" => Some("https"),
        "ws" => Some("ws"),
        "wss" => Some("wss"),
        _ => None,
    }
}

/// The client is the right-most address not itself a trusted proxy (each proxy appends the
/// peer it saw); when all are trusted, the left-most.
fn pick_client(trusted: &TrustedProxies, hops: &[String]) -> Option<String> {
    hops.iter()
        .rev()
        .find(|hop| !trusted.trusts(hop))
        .or_else(|| hops.first())
        .cloned()
}

fn strip_port(node: &str) -> String {
    let node = node.trim().trim_matches('"').trim();
    let host = match node.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => match node.split_once(':') {
            Some((host, _)) if node.matches(':').count() == 1 => host,
            _ => node,
        },
    };
    host.trim().to_owned()
}

/// Read X-Forwarded-For/-Proto and Forwarded; `Forwarded` wins when both are present.
pub fn read_forwarded<'a>(
    trusted: &TrustedProxies,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Forwarded {
    let mut xff: Vec<String> = Vec::new();
    let mut xfp: Option<&'static str> = None;
    let mut fwd_for: Vec<String> = Vec::new();
    let mut fwd_proto: Option<&'static str> = None;
    let mut saw_forwarded = false;
    for (name, value) in headers {
        // Most requests carry none of these: only their values are decoded.
        if !matches!(
            name,
            b"x-forwarded-for" | b"x-forwarded-proto" | b"forwarded"
        ) {
            continue;
        }
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        match name {
            b"x-forwarded-for" => xff.extend(value.split(',').map(|s| s.trim().to_owned())),
            b"x-forwarded-proto" => xfp = value.rsplit(',').next().and_then(scheme_of),
            b"forwarded" => {
                saw_forwarded = true;
                for element in value.split(',') {
                    for pair in element.split(';') {
                        let Some((key, val)) = pair.split_once('=') else {
                            continue;
                        };
                        match key.trim().to_ascii_lowercase().as_str() {
                            "for" => fwd_for.push(strip_port(val)),
                            "proto" => fwd_proto = scheme_of(val.trim_matches('"')),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let (hops, scheme) = if saw_forwarded {
        (fwd_for, fwd_proto)
    } else {
        (xff, xfp)
    };
    Forwarded {
        client: pick_client(trusted, &hops).filter(|c| !c.is_empty()),
        scheme,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_literals() {
        let t = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8,::1, unix:/tmp/s");
        assert!(t.trusts("127.0.0.1"));
        assert!(t.trusts("10.2.3.4"));
        assert!(!t.trusts("11.0.0.1"));
        assert!(t.trusts("::1"));
        assert!(t.trusts("::ffff:10.0.0.1"));
        assert!(t.trusts("unix:/tmp/s"));
        // A listed address spelled another way is still recognised.
        let t = TrustedProxies::parse("2001:db8::1,192.0.2.1/32");
        assert!(t.trusts("2001:DB8:0::1"));
        assert!(t.trusts("[2001:db8::1]"));
        assert!(t.trusts("192.0.2.1"));
        assert!(!t.trusts("2001:db8::2"));
        assert!(!t.trusts("192.0.2.10"));
        assert!(TrustedProxies::parse("*").trusts("8.8.8.8"));
    }

    #[test]
    fn right_most_untrusted_hop_is_the_client() {
        let t = TrustedProxies::parse("127.0.0.1,10.0.0.0/8");
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b"x-forwarded-for", b"1.2.3.4, 5.6.7.8, 10.0.0.2"),
            (b"x-forwarded-proto", b"https"),
        ];
        let f = read_forwarded(&t, headers.into_iter());
        assert_eq!(f.client.as_deref(), Some("5.6.7.8"));
        assert_eq!(f.scheme, Some("https"));
    }

    #[test]
    fn rfc7239_forwarded() {
        let t = TrustedProxies::parse("127.0.0.1");
        let headers: Vec<(&[u8], &[u8])> = vec![(
            b"forwarded",
            b"for=\"[2001:db8::1]:4711\";proto=https, for=192.0.2.60:80",
        )];
        let f = read_forwarded(&t, headers.into_iter());
        assert_eq!(f.client.as_deref(), Some("192.0.2.60"));
        assert_eq!(f.scheme, Some("https"));
    }

    #[test]
    fn unknown_scheme_is_ignored() {
        let t = TrustedProxies::parse("*");
        let headers: Vec<(&[u8], &[u8])> = vec![(b"x-forwarded-proto", b"gopher")];
        assert_eq!(read_forwarded(&t, headers.into_iter()).scheme, None);
    }
}
