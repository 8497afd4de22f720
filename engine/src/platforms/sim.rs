//! Accounts on Mirror's simulated broker: in this process, or served by another one
//! (`[sim] remote`).

use std::sync::Arc;

use anyhow::Context as _;
use mirror_connector::Connector;
use mirror_connector_sim::{RemoteSimConfig, RemoteSimConnector, SimAccountConfig, SimBroker, SimConnector};

use crate::config::{Resolved, ResolvedAccount};
use crate::secrets::Secret;

/// The connector of a simulated account: opened at the broker in this process, or reaching
/// the one `[sim] remote` names with its password.
pub(super) fn connector(
    broker: Option<&SimBroker>,
    resolved: &Resolved,
    account: &ResolvedAccount,
    password: Option<Secret>,
) -> anyhow::Result<Arc<dyn Connector>> {
    match (broker, &resolved.sim_remote) {
        (Some(broker), _) => {
            broker
                .open_account(SimAccountConfig {
                    name: account.name.clone(),
                    mode: account.mode,
                    currency: account.currency.clone(),
                    balance: account.balance,
                    instruments: account.instruments.clone(),
                })
                .with_context(|| format!("opening simulated account {}", account.name))?;
            Ok(Arc::new(SimConnector::new(broker.clone(), &account.name)?))
        }
        (None, Some(remote)) => Ok(Arc::new(RemoteSimConnector::new(RemoteSimConfig {
            request_timeout: resolved.connector.call_timeout,
            password: password.map(|secret| secret.expose().to_owned()),
            ..RemoteSimConfig::new(remote.clone(), account.name.clone())
        }))),
        (None, None) => unreachable!("a simulated account has a broker here or an address"),
    }
}
