//! The Open API messages this crate speaks, and how a message travels inside the
//! `ProtoMessage` wrapper.
//!
//! Message structs are written out in [`messages`](self) from the official field listing
//! (`scripts/gen_proto.py`); no protoc and no build script are involved.

mod messages;

pub use messages::*;

use crate::codec::CodecError;

/// A message that travels inside a [`ProtoMessage`] under a fixed `payloadType`.
pub trait OpenApiMessage: prost::Message + Default + Sized {
    /// The `payloadType` of the wrapper that carries this message.
    const PAYLOAD_TYPE: u32;
}

/// Implements [`OpenApiMessage`] for each listed message with its payload type (the default
/// of the message's own `payloadType` field).
macro_rules! payload_types {
    ($($name:ident = $value:literal,)*) => {
        $(impl crate::proto::OpenApiMessage for $name {
            const PAYLOAD_TYPE: u32 = $value;
        })*
    };
}
pub(crate) use payload_types;

/// Payload types of the Open API messages whose request class is "historical" (5 per second
/// per connection instead of 50): deal, order, trend bar, tick, cash-flow and offset history.
pub const HISTORICAL_PAYLOAD_TYPES: [u32; 8] = [2133, 2137, 2143, 2145, 2175, 2179, 2183, 2185];

/// Whether a request of this payload type counts against the historical rate limit.
pub fn is_historical(payload_type: u32) -> bool {
    HISTORICAL_PAYLOAD_TYPES.contains(&payload_type)
}

impl ProtoMessage {
    /// Wraps `message` with its payload type and an optional correlation id.
    pub fn wrap<M: OpenApiMessage>(message: &M, client_msg_id: Option<String>) -> Self {
        Self { payload_type: M::PAYLOAD_TYPE, payload: Some(message.encode_to_vec()), client_msg_id }
    }

    /// The inner message, if this wrapper carries an `M`.
    pub fn unpack<M: OpenApiMessage>(&self) -> Result<M, CodecError> {
        if self.payload_type != M::PAYLOAD_TYPE {
            return Err(CodecError::UnexpectedPayload { expected: M::PAYLOAD_TYPE, found: self.payload_type });
        }
        // An absent payload is an empty message (a heartbeat has no fields at all).
        M::decode(self.payload.as_deref().unwrap_or_default())
            .map_err(|error| CodecError::Decode { what: "payload", detail: error.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_types_come_from_the_listing_defaults() {
        assert_eq!(ProtoOAApplicationAuthReq::PAYLOAD_TYPE, 2100);
        assert_eq!(ProtoOANewOrderReq::PAYLOAD_TYPE, 2106);
        assert_eq!(ProtoOAExecutionEvent::PAYLOAD_TYPE, 2126);
        assert_eq!(ProtoOAGetAccountListByAccessTokenReq::PAYLOAD_TYPE, 2149);
        assert_eq!(ProtoHeartbeatEvent::PAYLOAD_TYPE, 51);
        assert_eq!(ProtoErrorRes::PAYLOAD_TYPE, 50);
        assert!(is_historical(ProtoOAOrderListReq::PAYLOAD_TYPE));
        assert!(!is_historical(ProtoOAReconcileReq::PAYLOAD_TYPE));
    }

    #[test]
    fn enum_names_round_trip() {
        let code = ProtoOAErrorCode::TradingBadVolume;
        assert_eq!(code.as_str_name(), "TRADING_BAD_VOLUME");
        assert_eq!(ProtoOAErrorCode::from_str_name("TRADING_BAD_VOLUME"), Some(code));
        assert_eq!(code as i32, 125);
    }
}
