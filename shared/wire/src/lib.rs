//! Mirror's wire encoding.
//!
//! A signal is archived once with rkyv into an aligned buffer, validated once, and shared by
//! reference count: every follower, the journal and the network read the same bytes in place.
//! [`SharedSignal`] is the only way to hold such bytes, so the one `unsafe` read below is
//! always of bytes that passed validation.
//!
//! - [`proto`]: the gateway protocol (QUIC) the SDK and the desktop apps speak.
//! - Frames ([`encode_frame`], [`FrameDecoder`]): length-prefixed rkyv messages, size-capped
//!   and validated with bytecheck on receipt, with typed errors ([`FrameError`]).

#![warn(missing_docs)]

mod frame;
mod messages;

pub mod proto {
    //! The gateway protocol (QUIC, ALPN [`ALPN`]): what the SDK and the desktop apps say to the
    //! engine and what it answers.
    //!
    //! - The client opens a bidirectional stream and sends [`Hello`] (protocol version and
    //!   token) as the connection's first frame; the server answers [`HelloReply`]. Without a
    //!   valid token the server closes the connection: no session, no other stream is read.
    //! - Then every command is one [`Request`] on a bidirectional stream of its own, answered by
    //!   one or more [`Response`] frames (a pair gets `PairAccepted`, later `PairOutcome`). A
    //!   malformed frame closes only its stream, with a [`Response::Error`] naming what was wrong.
    //! - [`Request::Subscribe`] turns its stream into a state stream: the server sends a
    //!   [`StateFrame::Snapshot`] and then [`StateFrame::Deltas`] numbered without gaps. A client
    //!   that reconnects sends the last number it holds and gets what followed it, or a fresh
    //!   snapshot when that is no longer kept.
    //!
    //! Prices and quantities travel as raw fixed-point integers (10⁻⁸ units, as in
    //! `mirror_model`), symbols as text; both are checked on receipt. The protocol's types are its
    //! own (not the model's), so that the model can change without breaking the wire.

    pub use crate::messages::{
        ALPN, AccountState, CLIENT_FRAME_MAX, CLIENT_NAME_LEN_MAX, CONFIG_LEN_MAX, CopyState, CopyStatus, Delta,
        DeltaEvent, Deltas, ERROR_LEN_MAX, ErrorCode, ErrorReply, FillState, FollowerPair, Hello, HelloReply,
        LatencyStats, LegReport, LegStatus, LogLevel, LogLine, OrderState, OrderStatus, OrderTicket, OrderType,
        PAIR_SETTLE_MS_MAX, PROTOCOL_VERSION, PairOutcome, PairPolicy, PairTicket, Percentiles, PositionState, Quote,
        Request, Resolution, Response, ResumeFrom, Role, SERVER_FRAME_MAX, Side, SignalState, Snapshot, SnapshotReason,
        StateFrame, Subscribe, TOKEN_LEN_MAX, Tif, Welcome, close_code, stream_code, topics,
    };

    /// Archived forms of the messages (read in place after validation).
    pub use crate::messages::{ArchivedRequest, ArchivedResponse, ArchivedStateFrame};
}

pub use frame::{
    FRAME_HEADER_LEN, FrameDecoder, FrameError, Message, decode_aligned, decode_frame, decode_payload, encode_frame,
    payload_buffer, payload_len,
};

use std::fmt;
use std::sync::Arc;

use mirror_model::{ArchivedSignal, Signal, SignalView};
use rkyv::rancor;
use rkyv::util::AlignedVec;

/// A signal could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Serialization failed.
    #[error("could not encode a signal: {0}")]
    Encode(String),
    /// The bytes are not a valid archived signal.
    #[error("not a valid signal frame ({len} bytes): {detail}")]
    Invalid {
        /// Length of the bytes.
        len: usize,
        /// What the validator said.
        detail: String,
    },
}

/// An archived, validated signal shared by reference count. Cloning it clones a pointer.
#[derive(Clone)]
pub struct SharedSignal {
    bytes: Arc<AlignedVec>,
}

impl SharedSignal {
    /// Archives `signal` (one allocation) and validates the result.
    pub fn encode(signal: &Signal) -> Result<Self, WireError> {
        let bytes = rkyv::to_bytes::<rancor::Error>(signal).map_err(|e| WireError::Encode(e.to_string()))?;
        Self::validated(bytes)
    }

    /// Copies bytes from outside (the network, the journal) into an aligned buffer and
    /// validates them; nothing unvalidated is ever read.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut aligned = AlignedVec::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        Self::validated(aligned)
    }

    fn validated(bytes: AlignedVec) -> Result<Self, WireError> {
        rkyv::access::<ArchivedSignal, rancor::Error>(&bytes)
            .map_err(|e| WireError::Invalid { len: bytes.len(), detail: e.to_string() })?;
        Ok(Self { bytes: Arc::new(bytes) })
    }

    /// The archived signal, read in place.
    pub fn archived(&self) -> &ArchivedSignal {
        // SAFETY: `self.bytes` can only have been built by `validated`, which checked with
        // `rkyv::access` that they hold a valid `ArchivedSignal` at the expected root
        // position. The buffer is immutable behind the `Arc` and 16-byte aligned
        // (`AlignedVec`), so the layout that was validated is the one read here. This skips
        // a second validation (about 15 ns) on each of the followers' reads.
        #[allow(unsafe_code)]
        unsafe {
            rkyv::access_unchecked::<ArchivedSignal>(&self.bytes)
        }
    }

    /// What followers read: native values copied out of the archive, no allocation.
    pub fn view(&self) -> SignalView<'_> {
        self.archived().view()
    }

    /// The encoded bytes (for the journal and the network).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The owned signal, decoded (allocates; for tools and tests, not the hot path).
    pub fn to_signal(&self) -> Signal {
        rkyv::deserialize::<Signal, rancor::Error>(self.archived()).expect("validated archives deserialize")
    }
}

impl fmt::Debug for SharedSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSignal({}, {} bytes)", self.view(), self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirror_model::{AccountId, LeaderRef, Money, Origin, Qty, SignalAction, SignalId};

    fn signal() -> Signal {
        Signal {
            id: SignalId(9),
            origin: Origin::Account(AccountId(4)),
            created_unix_ms: 1_700_000_000_000,
            accepted_mono_ns: 77,
            leader_balance: Some(Money::parse("1000").unwrap()),
            leader_equity: None,
            action: SignalAction::PartialClose {
                leader: LeaderRef(3),
                closed_qty: Qty::parse("1").unwrap(),
                qty_before: Qty::parse("3").unwrap(),
            },
            note: "scale out".into(),
        }
    }

    #[test]
    fn encodes_once_and_reads_in_place() {
        let original = signal();
        let shared = SharedSignal::encode(&original).unwrap();
        let copy = shared.clone();
        assert_eq!(copy.view(), original.view());
        assert_eq!(copy.to_signal(), original);
        assert!(std::ptr::eq(shared.as_bytes().as_ptr(), copy.as_bytes().as_ptr()), "clones share the bytes");
    }

    #[test]
    fn bytes_from_outside_are_validated() {
        let shared = SharedSignal::encode(&signal()).unwrap();
        let round_trip = SharedSignal::decode(shared.as_bytes()).unwrap();
        assert_eq!(round_trip.view(), shared.view());
        let truncated = &shared.as_bytes()[..shared.as_bytes().len() - 3];
        assert!(matches!(SharedSignal::decode(truncated), Err(WireError::Invalid { .. })));
        assert!(matches!(SharedSignal::decode(&[]), Err(WireError::Invalid { .. })));
    }

    /// Every single-byte corruption of a frame is either refused or decodes to a signal that
    /// reads and re-encodes consistently: validation, not luck, stands between outside bytes
    /// and the unchecked reads.
    #[test]
    fn corrupted_frames_are_refused_or_read_consistently() {
        let shared = SharedSignal::encode(&signal()).unwrap();
        let mut refused = 0;
        for index in 0..shared.as_bytes().len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut corrupted = shared.as_bytes().to_vec();
                corrupted[index] ^= mask;
                match SharedSignal::decode(&corrupted) {
                    Err(_) => refused += 1,
                    Ok(decoded) => {
                        let owned = decoded.to_signal();
                        assert_eq!(decoded.view(), owned.view());
                    }
                }
            }
        }
        assert!(refused > 0, "some corruptions must be caught by validation");
    }
}
