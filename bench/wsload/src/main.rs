//! wsload: the WebSocket echo load generator of ruvicorn's benchmark.
//!
//! ```text
//! wsload --port P [--host 127.0.0.1] [--path /ws] [-c 64] [-d 7] [--size 13] [--timeout 5]
//! wsload --serve --port P [--host 127.0.0.1]
//! wsload --tls-close --port P [--host 127.0.0.1] [--path /] [-c 64] [-d 7] [--timeout 5]
//! wsload --h3 --port P [--host 127.0.0.1] [--path /] [-c 64] [-m 10] [--body 0] [-n 0] [-d 7]
//! ```
//!
//! The first form opens `-c` connections, then for `-d` seconds each sends a `--size`-byte
//! text message and waits for its echo before the next (a closed loop), and prints one line
//! `BENCH_JSON {...}` with the same fields as the wrk reporter in bench/apps/report.lua
//! ("requests" are echoed messages). The second form is a trivial echo server used to
//! measure the client's own ceiling. The third is HTTPS with a full TLS handshake per
//! request (see `tlsclose`), which wrk cannot do: it resumes the session of the last one.
//! The fourth is HTTP/3 (see `h3`): `-c` QUIC connections with `-m` requests in flight on
//! each, a GET or a POST of `--body` bytes, for `-d` seconds or `-n` requests in all; its
//! report adds `body_bytes`, the response bodies' size.

mod client;
mod frame;
mod h3;
mod h3wire;
mod server;
mod tlsclose;

use std::io::{self, Write};
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "wsload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the command line asks for: the client's settings, and the mode.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(client::Config, Mode), String> {
    let mut cfg = client::Config {
        host: "127.0.0.1".into(),
        port: 0,
        path: "/ws".into(),
        connections: 64,
        duration: Duration::from_secs(7),
        size: 13,
        timeout: Duration::from_secs(5),
        streams: 10,
        body: 0,
        requests: 0,
    };
    let mut mode = Mode::WebSocket;
    let mut path = None;
    while let Some(flag) = args.next() {
        let chosen = match flag.as_str() {
            "--serve" => Some(Mode::Serve),
            "--tls-close" => Some(Mode::TlsClose),
            "--h3" => Some(Mode::H3),
            _ => None,
        };
        if let Some(chosen) = chosen {
            mode = chosen;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(
                "usage: wsload --port P [--host H] [--path /ws] [-c N] [-d SECONDS] \
                        [--size BYTES] [--timeout SECONDS] | wsload --serve --port P \
                        | wsload --tls-close --port P [--path /] [-c N] [-d SECONDS] \
                        | wsload --h3 --port P [--path /] [-c N] [-m STREAMS] [--body BYTES] \
                        [-n REQUESTS] [-d SECONDS]"
                    .into(),
            );
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: not a valid value: {value:?}");
        match flag.as_str() {
            "--host" => cfg.host.clone_from(&value),
            "--port" => cfg.port = value.parse().map_err(|_| bad())?,
            "--path" => path = Some(value),
            "-c" | "--connections" => cfg.connections = value.parse().map_err(|_| bad())?,
            "-d" | "--duration" => cfg.duration = seconds(&value).ok_or_else(bad)?,
            "--size" => cfg.size = value.parse().map_err(|_| bad())?,
            "--timeout" => cfg.timeout = seconds(&value).ok_or_else(bad)?,
            "-m" | "--streams" => cfg.streams = value.parse().map_err(|_| bad())?,
            "--body" => cfg.body = value.parse().map_err(|_| bad())?,
            "-n" | "--requests" => cfg.requests = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown option {flag} (try --help)")),
        }
    }
    if cfg.port == 0 {
        return Err("--port is required".into());
    }
    let default_path = if matches!(mode, Mode::TlsClose | Mode::H3) {
        "/"
    } else {
        "/ws"
    };
    cfg.path = path.unwrap_or_else(|| default_path.into());
    Ok((cfg, mode))
}

/// A non-negative, finite number of seconds (`Duration::from_secs_f64` panics on others).
fn seconds(value: &str) -> Option<Duration> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// The `p`th percentile (nearest rank) of sorted latencies; 0 when there are none.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    WebSocket,
    Serve,
    TlsClose,
    H3,
}

fn real_main() -> Result<(), String> {
    let (cfg, mode) = parse_args(std::env::args().skip(1))?;
    if mode == Mode::Serve {
        let addr = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("host has no address")?;
        return server::serve(addr).map_err(|e| format!("serving on {addr}: {e}"));
    }
    if cfg.connections == 0 || cfg.streams == 0 || cfg.size > frame::MAX_PAYLOAD {
        return Err("need at least one connection and one stream, and a size up to 16 MiB".into());
    }
    let run = match mode {
        Mode::TlsClose => tlsclose::run,
        Mode::H3 => h3::run,
        _ => client::run,
    };
    let mut stats = run(&cfg).map_err(|e| e.to_string())?;
    if let Some(why) = &stats.first_error {
        let _ = writeln!(io::stderr(), "wsload: first error: {why}");
    }
    let lat = &mut stats.latencies_us;
    lat.sort_unstable();
    let pct = |p: f64| percentile(lat, p);
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|&x| f64::from(x)).sum::<f64>() / lat.len() as f64
    };
    let line = format!(
        "BENCH_JSON {{\"requests\": {}, \"duration_us\": {}, \"bytes\": {}, \
         \"connect\": {}, \"read\": {}, \"write\": {}, \"status\": {}, \"timeout\": {}, \
         \"p50_us\": {}, \"p90_us\": {}, \"p99_us\": {}, \"max_us\": {}, \"mean_us\": {:.1}, \
         \"connections\": {}, \"size\": {}, \"body_bytes\": {}}}",
        stats.messages,
        stats.duration.as_micros(),
        stats.bytes,
        stats.connect,
        stats.read,
        stats.write,
        stats.status,
        stats.timeout,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        lat.last().copied().unwrap_or(0),
        mean,
        cfg.connections,
        cfg.size,
        stats.body_bytes,
    );
    writeln!(io::stdout().lock(), "{line}").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<(client::Config, Mode), String> {
        parse_args(list.iter().map(ToString::to_string))
    }

    #[test]
    fn defaults_and_overrides() {
        let (cfg, mode) = args(&["--port", "8000"]).expect("valid");
        assert_eq!(mode, Mode::WebSocket);
        assert_eq!(
            (cfg.host.as_str(), cfg.port, cfg.path.as_str()),
            ("127.0.0.1", 8000, "/ws")
        );
        assert_eq!((cfg.connections, cfg.size), (64, 13));
        assert_eq!(cfg.duration, Duration::from_secs(7));
        let (cfg, mode) = args(&[
            "--serve", "--port", "1", "-c", "3", "-d", "0.5", "--path", "/e",
        ])
        .expect("ok");
        assert_eq!(mode, Mode::Serve);
        assert_eq!((cfg.connections, cfg.path.as_str()), (3, "/e"));
        assert_eq!(cfg.duration, Duration::from_millis(500));
        let (cfg, mode) = args(&["--tls-close", "--port", "1"]).expect("ok");
        assert_eq!((mode, cfg.path.as_str()), (Mode::TlsClose, "/"));
        let (cfg, mode) = args(&[
            "--h3", "--port", "1", "-m", "4", "--body", "4096", "-n", "1",
        ])
        .expect("ok");
        assert_eq!((mode, cfg.path.as_str()), (Mode::H3, "/"));
        assert_eq!((cfg.streams, cfg.body, cfg.requests), (4, 4096, 1));
    }

    #[test]
    fn bad_command_lines_are_one_line_errors() {
        for (argv, want) in [
            (&[][..], "--port is required"),
            (&["--port"][..], "--port needs a value"),
            (&["--port", "x"][..], "--port: not a valid value: \"x\""),
            (
                &["--port", "1", "-d", "-1"][..],
                "-d: not a valid value: \"-1\"",
            ),
            (
                &["--port", "1", "--timeout", "inf"][..],
                "--timeout: not a valid value: \"inf\"",
            ),
            (&["--bogus", "1"][..], "unknown option --bogus (try --help)"),
        ] {
            assert_eq!(args(argv).err().as_deref(), Some(want), "{argv:?}");
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), 0);
        let lat: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&lat, 50.0), 50);
        assert_eq!(percentile(&lat, 99.0), 99);
        assert_eq!(percentile(&lat, 0.0), 1);
        assert_eq!(percentile(&[7], 90.0), 7);
    }

    #[test]
    fn message_repeats_the_greeting_to_size() {
        assert_eq!(client::message(0), b"");
        assert_eq!(client::message(5), b"Hello");
        assert_eq!(client::message(15), b"Hello, world!He");
    }
}
