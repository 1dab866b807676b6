//! A few background tasks through the library API, then their notifications.
//!
//! `cargo run -p meanwhile-runtime --example background`

use meanwhile_runtime::Runtime;
use meanwhile_runtime::core::{TaskSpec, WaitMode};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = std::env::temp_dir().join(format!("meanwhile-example-{}", std::process::id()));
    let rt = Runtime::open(&home).await?;

    let mut ids = Vec::new();
    for (name, cmd) in [
        ("quick", "echo hello from a background task"),
        ("slow", "sleep 1; echo done sleeping"),
        ("failing", "echo about to fail >&2; exit 3"),
    ] {
        let mut spec = TaskSpec::shell(cmd);
        spec.name = Some(name.into());
        spec.session = Some("example".into());
        ids.push(rt.submit(spec).await?);
    }
    let f = rt
        .submit_fn(
            TaskSpec {
                name: Some("closure".into()),
                session: Some("example".into()),
                ..TaskSpec::default()
            },
            |ctx| async move {
                ctx.println("an async closure ran as a task");
                Ok::<(), String>(())
            },
        )
        .await?;
    ids.push(f);

    println!("submitted tasks {ids:?}; the program could do other work now");
    rt.wait(&ids, WaitMode::All, Some(Duration::from_secs(60)))
        .await?;
    for n in rt.drain_notifications("example", 100).await? {
        println!("\n{}", n.text());
    }
    rt.shutdown().await;
    let _ = std::fs::remove_dir_all(&home);
    Ok(())
}
