//! The simulated broker behind the `Connector` trait.

use async_trait::async_trait;
use mirror_connector::{
    AccountSnapshot, CancelRequest, CloseRequest, Connector, ConnectorError, EventStream, ModifyRequest, OrderLookup,
    PlaceAck, SessionInfo, WorkingOrder,
};
use mirror_model::{ClientOrderId, InstrumentSpec, OrderRequest, Platform, Position, Symbol};

use crate::broker::{SimBroker, SimError};

/// One simulated account, seen through the `Connector` trait.
#[derive(Debug, Clone)]
pub struct SimConnector {
    broker: SimBroker,
    account: String,
    events: EventStream,
}

impl SimConnector {
    /// A connector for `account` of `broker`.
    pub fn new(broker: SimBroker, account: &str) -> Result<Self, SimError> {
        let events = broker.events(account)?;
        Ok(Self { broker, account: account.to_owned(), events })
    }

    /// The account's name at the broker.
    pub fn account_name(&self) -> &str {
        &self.account
    }

    fn ensure_connected(&self) -> Result<(), ConnectorError> {
        if self.broker.is_connected(&self.account) { Ok(()) } else { Err(ConnectorError::NotConnected) }
    }

    /// Waits the simulated network and broker latency.
    async fn latency(&self) {
        let delay = self.broker.next_latency();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[async_trait]
impl Connector for SimConnector {
    fn platform(&self) -> Platform {
        Platform::Sim
    }

    async fn connect(&self) -> Result<SessionInfo, ConnectorError> {
        self.latency().await;
        self.broker.set_connected(&self.account, true, "")?;
        let (currency, mode) = self.broker.session_info(&self.account)?;
        Ok(SessionInfo { broker_account: self.account.clone(), currency, mode })
    }

    async fn disconnect(&self) {
        // Unknown accounts cannot be constructed, so this cannot fail.
        let _ = self.broker.set_connected(&self.account, false, "disconnected by the client");
    }

    fn events(&self) -> EventStream {
        self.events.clone()
    }

    async fn instruments(&self) -> Result<Vec<InstrumentSpec>, ConnectorError> {
        self.ensure_connected()?;
        self.broker.instruments(&self.account)
    }

    async fn account(&self) -> Result<AccountSnapshot, ConnectorError> {
        self.ensure_connected()?;
        self.broker.snapshot(&self.account)
    }

    async fn place(&self, order: &OrderRequest) -> Result<PlaceAck, ConnectorError> {
        self.ensure_connected()?;
        self.latency().await;
        let (ack, followup) = self.broker.place(&self.account, order, false)?;
        if let Some(followup) = followup {
            let broker = self.broker.clone();
            tokio::spawn(async move { broker.run_followup(followup).await });
        }
        Ok(ack)
    }

    async fn close(&self, request: &CloseRequest) -> Result<PlaceAck, ConnectorError> {
        self.ensure_connected()?;
        self.latency().await;
        self.broker.close(&self.account, request, false)
    }

    async fn modify(&self, request: &ModifyRequest) -> Result<(), ConnectorError> {
        self.ensure_connected()?;
        self.latency().await;
        self.broker.modify(&self.account, request, false)
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<(), ConnectorError> {
        self.ensure_connected()?;
        self.latency().await;
        self.broker.cancel(&self.account, request, false)
    }

    async fn open_positions(&self) -> Result<Vec<Position>, ConnectorError> {
        self.ensure_connected()?;
        self.broker.open_positions(&self.account)
    }

    async fn open_orders(&self) -> Result<Vec<WorkingOrder>, ConnectorError> {
        self.ensure_connected()?;
        self.broker.working_orders(&self.account)
    }

    async fn subscribe_quotes(&self, symbols: &[Symbol]) -> Result<(), ConnectorError> {
        self.ensure_connected()?;
        self.broker.subscribe(&self.account, symbols)
    }

    async fn order_history(&self, client_ids: &[ClientOrderId]) -> Result<Vec<OrderLookup>, ConnectorError> {
        self.ensure_connected()?;
        self.broker.order_history(&self.account, client_ids)
    }

    async fn request_snapshot(&self) -> Result<(), ConnectorError> {
        self.ensure_connected()?;
        self.broker.request_snapshot(&self.account)
    }
}
