//! The broker's state outlives its clients: a client that goes away (dropped mid-burst, or its
//! process killed with SIGKILL) leaves its orders and positions, and a new client for the same
//! account is served at once and sees them.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{HEDGING, buy, client, connected, eventually, serve};
use mirror_connector::{Connector, LookupState};
use mirror_connector_sim::{RemoteSimConfig, RemoteSimConnector, SimConfig};
use mirror_model::ClientOrderId;

const WAIT: Duration = Duration::from_secs(5);
/// Orders the killed child process places before it says it is ready.
const CHILD_ORDERS: u64 = 25;
const CHILD_ADDR: &str = "MIRROR_SIM_CHILD_ADDR";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_dropped_mid_burst_leaves_its_orders_for_the_next_client() {
    let (broker, server) = serve(SimConfig::default()).await;
    let first = client(&server, HEDGING);
    connected(&first).await;

    // Eight workers place orders until the client is dropped under them.
    let acked: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let mut workers = Vec::new();
    for worker in 0..8u64 {
        let connector = first.clone();
        let acked = Arc::clone(&acked);
        workers.push(tokio::spawn(async move {
            for n in 0.. {
                let id = 1 + worker + 8 * n;
                match connector.place(&buy(id, "0.01")).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(id);
                    }
                    Err(error) => panic!("order {id} failed while the client was up: {error}"),
                }
            }
        }));
    }
    eventually(WAIT, "200 acknowledged orders", || async { acked.lock().unwrap().len() >= 200 }).await;
    // Drop every handle on the first client, with requests in flight.
    for worker in &workers {
        worker.abort();
    }
    for worker in workers {
        assert!(worker.await.unwrap_err().is_cancelled());
    }
    drop(first);
    let acked = acked.lock().unwrap().clone();
    let highest = *acked.last().unwrap();

    let second = client(&server, HEDGING);
    connected(&second).await;
    let tried: Vec<ClientOrderId> = (1..=highest + 8).map(|id| buy(id, "0.01").client_id).collect();
    let history = second.order_history(&tried).await.unwrap();
    let found: BTreeSet<ClientOrderId> = history.iter().map(|lookup| lookup.client_id).collect();
    assert_eq!(found.len(), history.len(), "an order is listed twice");
    for id in &acked {
        assert!(found.contains(&buy(*id, "0.01").client_id), "acknowledged order {id} is missing from the history");
    }
    assert!(history.iter().all(|lookup| lookup.state == LookupState::Filled && lookup.fills.len() == 1));
    // Each executed order (acknowledged or not) opened one position, and nothing else did.
    let positions = second.open_positions().await.unwrap();
    assert_eq!(positions.len(), history.len());
    assert_eq!(broker.positions(HEDGING).unwrap().len(), history.len());
    eventually(WAIT, "only the new session live", || async {
        server.live_sessions().await == vec![HEDGING.to_owned()]
    })
    .await;
}

/// Not a test on its own: the client process that `a_sigkilled_client_process_frees_its_session_at_once`
/// starts and kills. It connects, places orders, says `READY` and waits to be killed.
#[tokio::test]
#[ignore = "helper process of a_sigkilled_client_process_frees_its_session_at_once"]
async fn child_client_process() {
    let Ok(addr) = std::env::var(CHILD_ADDR) else { return };
    let connector = RemoteSimConnector::new(RemoteSimConfig::new(addr, HEDGING));
    connector.connect().await.unwrap();
    for id in 1..=CHILD_ORDERS {
        connector.place(&buy(id, "0.01")).await.unwrap();
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "READY").unwrap();
    stdout.flush().unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_client_process_frees_its_session_at_once() {
    let (broker, server) = serve(SimConfig::default()).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_client_process", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ADDR, server.local_addr().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        // libtest prints the test's name on the same line, before it.
        BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line.trim_end().ends_with("READY"))
    });
    let ready = tokio::time::timeout(Duration::from_secs(30), ready).await;
    if !matches!(ready, Ok(Ok(true))) {
        let _ = child.kill();
        panic!("the child process never got ready: {ready:?}");
    }
    assert_eq!(server.live_sessions().await, vec![HEDGING.to_owned()]);

    child.kill().unwrap(); // SIGKILL on Unix: no goodbye from the client.
    child.wait().unwrap();

    // The server notices the socket closing and ends the session on its own.
    eventually(WAIT, "the server ending the killed client's session", || async {
        server.live_sessions().await.is_empty()
    })
    .await;
    let started = Instant::now();
    let next = client(&server, HEDGING);
    connected(&next).await;
    assert!(started.elapsed() < Duration::from_secs(1), "reconnecting took {:?}", started.elapsed());
    let ids: Vec<ClientOrderId> = (1..=CHILD_ORDERS).map(|id| buy(id, "0.01").client_id).collect();
    let history = next.order_history(&ids).await.unwrap();
    assert_eq!(history.len(), ids.len());
    assert_eq!(next.open_positions().await.unwrap().len(), ids.len());
    assert_eq!(broker.positions(HEDGING).unwrap().len(), ids.len());
    // A resend by the restarted client is recognised, not executed again.
    let again = next.place(&buy(1, "0.01")).await.unwrap();
    assert_eq!(again.broker_id, history[0].broker_id);
    assert_eq!(broker.positions(HEDGING).unwrap().len(), ids.len());
}
