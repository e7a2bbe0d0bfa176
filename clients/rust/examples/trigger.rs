//! Triggers a sync and follows its run, printing each change:
//! `cargo run -p backflow-client --example trigger -- http://127.0.0.1:7070 customer_scores`
//! (set `BACKFLOW_TOKEN` when the control plane requires a token).
// An example's job is to print.
#![allow(clippy::print_stdout)]

use backflow_client::Client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(sync)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: trigger SERVER SYNC");
    };
    let mut builder = Client::builder(server);
    if let Ok(token) = std::env::var("BACKFLOW_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.connect().await?;
    let handle = client.trigger(&sync).await?;
    println!("queued {}", handle.name());
    let run = handle
        .wait_with_progress(|run| {
            let c = run.counts.unwrap_or_default();
            println!(
                "{:?}: read {}, written {}, failed {}",
                run.state(),
                c.read,
                c.written,
                c.failed
            );
        })
        .await?;
    for row in client.list_rejected_rows(&run.name).await? {
        println!("rejected {} ({}): {}", row.key, row.column, row.message);
    }
    Ok(())
}
