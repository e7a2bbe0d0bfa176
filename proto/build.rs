//! Compiles `backflow/v1/*.proto` with protox (a Rust protobuf compiler, so the build needs no
//! `protoc` on the machine) and generates the tonic stubs plus the descriptor set that server
//! reflection serves.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "backflow/v1/connection.proto",
    "backflow/v1/connector.proto",
    "backflow/v1/sync.proto",
    "backflow/v1/run.proto",
    "backflow/v1/worker.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("backflow_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Undecodable requests are INVALID_ARGUMENT (see src/codec.rs).
        .codec_path("crate::codec::ApiCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
