//! wsload: the WebSocket echo load generator of ruvicorn's benchmark.
//!
//! ```text
//! wsload --port P [--host 127.0.0.1] [--path /ws] [-c 64] [-d 7] [--size 13] [--timeout 5]
//! wsload --serve --port P [--host 127.0.0.1]
//! ```
//!
//! The first form opens `-c` connections, then for `-d` seconds each sends a `--size`-byte
//! text message and waits for its echo before the next (a closed loop), and prints one line
//! `BENCH_JSON {...}` with the same fields as the wrk reporter in bench/apps/report.lua
//! ("requests" are echoed messages). The second form is a trivial echo server used to
//! measure the client's own ceiling.

mod client;
mod frame;
mod server;

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

fn real_main() -> Result<(), String> {
    let mut cfg = client::Config {
        host: "127.0.0.1".into(),
        port: 0,
        path: "/ws".into(),
        connections: 64,
        duration: Duration::from_secs(7),
        size: 13,
        timeout: Duration::from_secs(5),
    };
    let mut serve = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--serve" {
            serve = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(
                "usage: wsload --port P [--host H] [--path /ws] [-c N] [-d SECONDS] \
                        [--size BYTES] [--timeout SECONDS] | wsload --serve --port P"
                    .into(),
            );
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: not a valid value: {value:?}");
        match flag.as_str() {
            "--host" => cfg.host.clone_from(&value),
            "--port" => cfg.port = value.parse().map_err(|_| bad())?,
            "--path" => cfg.path.clone_from(&value),
            "-c" | "--connections" => cfg.connections = value.parse().map_err(|_| bad())?,
            "-d" | "--duration" => {
                cfg.duration = Duration::from_secs_f64(value.parse().map_err(|_| bad())?);
            }
            "--size" => cfg.size = value.parse().map_err(|_| bad())?,
            "--timeout" => cfg.timeout = Duration::from_secs_f64(value.parse().map_err(|_| bad())?),
            _ => return Err(format!("unknown option {flag} (try --help)")),
        }
    }
    if cfg.port == 0 {
        return Err("--port is required".into());
    }
    if serve {
        let addr = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("host has no address")?;
        return server::serve(addr).map_err(|e| format!("serving on {addr}: {e}"));
    }
    if cfg.connections == 0 || cfg.size > frame::MAX_PAYLOAD {
        return Err("need at least one connection and a size up to 16 MiB".into());
    }
    let mut stats = client::run(&cfg).map_err(|e| e.to_string())?;
    if let Some(why) = &stats.first_error {
        let _ = writeln!(io::stderr(), "wsload: first error: {why}");
    }
    let lat = &mut stats.latencies_us;
    lat.sort_unstable();
    let pct = |p: f64| -> u32 {
        if lat.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * lat.len() as f64).ceil() as usize;
        lat[rank.clamp(1, lat.len()) - 1]
    };
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|&x| f64::from(x)).sum::<f64>() / lat.len() as f64
    };
    let line = format!(
        "BENCH_JSON {{\"requests\": {}, \"duration_us\": {}, \"bytes\": {}, \
         \"connect\": {}, \"read\": {}, \"write\": {}, \"status\": {}, \"timeout\": {}, \
         \"p50_us\": {}, \"p90_us\": {}, \"p99_us\": {}, \"max_us\": {}, \"mean_us\": {:.1}, \
         \"connections\": {}, \"size\": {}}}",
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
    );
    writeln!(io::stdout().lock(), "{line}").map_err(|e| e.to_string())
}
