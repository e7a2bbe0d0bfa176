//! The codec of every `backflow.v1` service: prost's, except that a message that does not
//! decode is INVALID_ARGUMENT.
//!
//! gRPC's own guidance makes a parse failure INTERNAL, which tells a client the server is
//! broken; for an API that other services call, bytes that are not the request are the
//! caller's mistake, and INVALID_ARGUMENT says so (it is also never retried).

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder};

/// [`ProstCodec`] with decode failures reported as INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct ApiCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for ApiCodec<T, U> {
    fn default() -> Self {
        Self {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for ApiCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = ApiDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ApiDecoder {
            inner: ProstDecoder::new(BufferSettings::default()),
        }
    }
}

/// Decodes with prost; an undecodable message is INVALID_ARGUMENT naming the message type.
#[derive(Debug)]
pub struct ApiDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: Message + Default + Send + 'static> Decoder for ApiDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| {
            Status::invalid_argument(format!(
                "the message does not decode as {}: {}",
                std::any::type_name::<U>()
                    .rsplit("::")
                    .next()
                    .unwrap_or_default(),
                status.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
