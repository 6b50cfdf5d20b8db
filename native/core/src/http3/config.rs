//! The QUIC server configuration: TLS (the same rustls and *ring* provider as TCP) plus
//! the transport limits of [`Settings`].

use std::sync::Arc;

use quinn_proto::crypto::rustls::QuicServerConfig;
use quinn_proto::{IdleTimeout, ServerConfig, TransportConfig, VarInt};

use super::{session, Settings, ALPN};

/// Unidirectional streams a client may have open: its control stream, QPACK encoder and
/// decoder streams, and a few of the unknown types it may send to exercise extensibility.
const MAX_UNI_STREAMS: u32 = 8;

pub(crate) fn server_config(
    mut tls: rustls::ServerConfig,
    settings: &Settings,
) -> Result<Arc<ServerConfig>, String> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // quinn-proto accepts either no 0-RTT or unlimited 0-RTT; ruvicorn takes none (replay).
    tls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(tls)
        .map_err(|err| format!("TLS configuration cannot serve QUIC: {err}"))?;
    let mut transport = TransportConfig::default();
    let idle = IdleTimeout::try_from(settings.idle_timeout)
        .map_err(|_| "HTTP/3 idle timeout out of range".to_owned())?;
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(settings.max_concurrent_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
        .max_idle_timeout(Some(idle))
        .stream_receive_window(VarInt::from_u32(settings.stream_receive_window))
        .receive_window(VarInt::from_u32(settings.connection_receive_window));
    let mut config = ServerConfig::with_crypto(Arc::new(session::ServerConfig(Arc::new(crypto))));
    config.transport_config(Arc::new(transport));
    Ok(Arc::new(config))
}
