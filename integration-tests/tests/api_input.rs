//! Raw gRPC input that is not what the API takes gets INVALID_ARGUMENT naming what is wrong,
//! never INTERNAL or a silently empty answer: bytes that do not decode as the request, a
//! `page_token` no page returned, and a negative PollWork `wait`. No database is needed.

mod common;

use anyhow::{ensure, Context as _, Result};
use backflow_proto::v1;
use bytes::{Buf as _, BufMut as _};
use common::*;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Code;

/// Sends and receives bytes as they are, to put on the wire what no generated client would.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_invalid_argument() -> Result<()> {
    let env = TestEnv::new("api_input").await?;
    let result = within(TEST_LIMIT, malformed_body(&env)).await;
    env.finish(result).await
}

async fn malformed_body(env: &TestEnv) -> Result<()> {
    let (_cp, addr) = sqlite_control_plane(env, &[]).await?;
    let api = Api::new(&addr, None)?;

    // Field 1 of CreateConnectionRequest is a string; a length running past the end of the
    // message cannot decode.
    let mut grpc = tonic::client::Grpc::new(channel(&addr)?);
    grpc.ready().await?;
    let path =
        http::uri::PathAndQuery::from_static("/backflow.v1.ConnectionService/CreateConnection");
    let status = grpc
        .unary(tonic::Request::new(vec![0x0a, 0x7f, b'x']), path, RawCodec)
        .await
        .err()
        .context("an undecodable CreateConnection was accepted")?;
    ensure!(
        status.code() == Code::InvalidArgument && status.message().contains("does not decode"),
        "undecodable request: {status:?}"
    );

    // A page token no page returned.
    let garbage = "!!not-a-token==".to_owned();
    let statuses = [
        api.connections
            .clone()
            .list_connections(v1::ListConnectionsRequest {
                page_token: garbage.clone(),
                ..Default::default()
            })
            .await
            .err(),
        api.syncs
            .clone()
            .list_syncs(v1::ListSyncsRequest {
                page_token: garbage.clone(),
                ..Default::default()
            })
            .await
            .err(),
        api.runs
            .clone()
            .list_runs(v1::ListRunsRequest {
                page_token: garbage.clone(),
                ..Default::default()
            })
            .await
            .err(),
    ];
    for (list, status) in ["ListConnections", "ListSyncs", "ListRuns"]
        .iter()
        .zip(statuses)
    {
        let status = status.with_context(|| format!("{list} answered a garbage page token"))?;
        let fields = violated_fields(&status).with_context(|| list.to_string())?;
        ensure!(fields == ["page_token"], "{list}: {fields:?}");
    }

    // A negative wait.
    let status = api
        .workers
        .clone()
        .poll_work(v1::PollWorkRequest {
            worker_id: "w1".into(),
            wait: Some(prost_types::Duration {
                seconds: -5,
                nanos: 0,
            }),
        })
        .await
        .err()
        .context("PollWork accepted a negative wait")?;
    let fields = violated_fields(&status).context("PollWork")?;
    ensure!(fields == ["wait"], "PollWork: {fields:?}");
    Ok(())
}
