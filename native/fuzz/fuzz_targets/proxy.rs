//! Proxy headers: `--forwarded-allow-ips` and X-Forwarded-For/-Proto and
//! Forwarded.
//!
//! Input: a selector byte, then newline-separated lines: the first is the
//! trusted-proxy spec, each further one a header whose name the selector's
//! bits pick (x-forwarded-for, x-forwarded-proto, forwarded, or another).
//! Properties: nothing panics; a scheme is one of the four known; a client
//! is non-empty, trimmed text some header carried, without a comma; every IP or
//! network in the spec trusts the address it names, and a network trusts
//! exactly the addresses its prefix covers.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use ruvicorn_core::proxy::{read_forwarded, TrustedProxies};
use ruvicorn_fuzz::Input;

const NAMES: [&[u8]; 4] = [
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"forwarded",
    b"via",
];

fn headers_and_spec(selector: u8, rest: &[u8]) {
    let mut lines = rest.split(|&b| b == b'\n');
    let spec = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let trusted = TrustedProxies::parse(&spec);
    let mut headers: Vec<(&[u8], &[u8])> = Vec::new();
    for (i, value) in lines.enumerate() {
        let pick = (selector >> ((i % 4) * 2)) & 3;
        headers.push((NAMES[usize::from(pick)], value));
    }
    let forwarded = read_forwarded(&trusted, headers.iter().copied());
    if let Some(scheme) = forwarded.scheme {
        assert!(["http", "https", "ws", "wss"].contains(&scheme), "{scheme}");
    }
    if let Some(client) = &forwarded.client {
        assert!(
            !client.contains(','),
            "client {client:?} holds a list separator"
        );
        assert_eq!(client.trim(), client, "client {client:?} not trimmed");
        let carried = headers.iter().any(|&(name, value)| {
            name != b"via"
                && name != b"x-forwarded-proto"
                && String::from_utf8_lossy(value).contains(client.as_str())
        });
        assert!(carried, "client {client:?} is in no forwarding header");
    }
    // Each IP or network listed is trusted for the address it names.
    for item in spec.split(',').map(str::trim) {
        let addr = item.split('/').next().unwrap_or(item);
        if let Ok(ip) = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            if item
                .split_once('/')
                .is_none_or(|(_, bits)| bits.parse::<u8>().is_ok_and(|b| b <= max_bits(ip)))
            {
                assert!(
                    trusted.trusts(&ip.to_string()),
                    "{spec:?} does not trust {ip}"
                );
            }
        }
    }
}

fn max_bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// A network from 16 bytes of address, a prefix length, and a candidate
/// address: `trusts` agrees with a plain bit-by-bit prefix comparison.
fn networks(mut input: Input<'_>) {
    let v6 = input.byte() & 1 == 1;
    let bits_byte = input.byte();
    let mut net = [0u8; 16];
    let mut addr = [0u8; 16];
    net.copy_from_slice(&pad16(input.take(16)));
    addr.copy_from_slice(&pad16(input.take(16)));
    let (net_ip, addr_ip, max): (IpAddr, IpAddr, u8) = if v6 {
        (net.into(), addr.into(), 128)
    } else {
        let n: [u8; 4] = [net[0], net[1], net[2], net[3]];
        let a: [u8; 4] = [addr[0], addr[1], addr[2], addr[3]];
        (n.into(), a.into(), 32)
    };
    let bits = bits_byte % (max + 1);
    let octets = |ip: IpAddr| -> Vec<u8> {
        match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        }
    };
    let (n, a) = (octets(net_ip), octets(addr_ip));
    let bit = |bytes: &[u8], i: usize| bytes[i / 8] >> (7 - i % 8) & 1;
    let covered = (0..usize::from(bits)).all(|i| bit(&n, i) == bit(&a, i));
    let trusted = TrustedProxies::parse(&format!("{net_ip}/{bits}"));
    assert_eq!(
        trusted.trusts(&addr_ip.to_string()),
        covered,
        "{net_ip}/{bits} vs {addr_ip}"
    );
    if let IpAddr::V4(v4) = addr_ip {
        // An IPv4-mapped IPv6 peer is the IPv4 address it maps.
        let mapped = v4.to_ipv6_mapped().to_string();
        assert_eq!(
            trusted.trusts(&mapped),
            covered,
            "{net_ip}/{bits} vs {mapped}"
        );
    }
}

fn pad16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..bytes.len()].copy_from_slice(bytes);
    out
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    if mode & 0x80 == 0 {
        let selector = input.byte();
        headers_and_spec(selector, input.rest());
    } else {
        networks(input);
    }
});
