//! Golden frames: the brief's `ProtoOAApplicationAuthReq` frame, and frames serialized by
//! Spotware's official Python SDK (`tests/data/*.hex`, made by `scripts/make_fixtures.py`).
//! Requests we send must encode to the same bytes; messages we receive must decode to the
//! values the SDK put in, and encode back to the same bytes.

use mirror_connector_ctrader::proto::{
    OpenApiMessage, ProtoHeartbeatEvent, ProtoMessage, ProtoOAAccountAuthReq, ProtoOAApplicationAuthReq,
    ProtoOAErrorRes, ProtoOAExecutionEvent, ProtoOAExecutionType, ProtoOAGetAccountListByAccessTokenRes,
    ProtoOANewOrderReq, ProtoOAOrderErrorEvent, ProtoOAOrderStatus, ProtoOAOrderType, ProtoOAPositionStatus,
    ProtoOAReconcileRes, ProtoOASpotEvent, ProtoOASymbolByIdRes, ProtoOATimeInForce, ProtoOATradeSide,
};
use mirror_connector_ctrader::{FrameDecoder, decode_frame, encode_frame, encode_message};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    hex(text.trim())
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// Decodes a fixture whole, and checks that encoding the decoded wrapper gives it back.
fn decoded<M: OpenApiMessage>(name: &str) -> (M, ProtoMessage) {
    let bytes = fixture(name);
    let (wrapper, used) = decode_frame(&bytes).unwrap();
    assert_eq!(used, bytes.len(), "{name}: one frame, all of it");
    let message: M = wrapper.unpack().unwrap();
    let mut again = Vec::new();
    encode_frame(&ProtoMessage::wrap(&message, wrapper.client_msg_id.clone()), &mut again).unwrap();
    assert_eq!(again, bytes, "{name}: decode then encode changes the bytes");
    (message, wrapper)
}

#[test]
fn the_briefs_application_auth_frame_encodes_and_decodes() {
    // From the brief, §1 "Golden frame".
    let brief = hex(concat!("00000013", "08b410", "1209120269641a03736563", "1a03636d31"));
    let auth = ProtoOAApplicationAuthReq { payload_type: None, client_id: "id".into(), client_secret: "sec".into() };
    let ours = encode_message(&auth, Some("cm1".into())).unwrap();
    assert_eq!(ours, brief);
    assert_eq!(ours, fixture("application_auth_req"), "the official SDK agrees with the brief");
    let (decoded, wrapper) = decoded::<ProtoOAApplicationAuthReq>("application_auth_req");
    assert_eq!(wrapper.payload_type, 2100);
    assert_eq!(wrapper.client_msg_id.as_deref(), Some("cm1"));
    assert_eq!((decoded.client_id.as_str(), decoded.client_secret.as_str()), ("id", "sec"));
    assert_eq!(decoded.payload_type, None, "the inner payloadType is left unset");
}

#[test]
fn heartbeats_match_the_sdks() {
    let ours = encode_message(&ProtoHeartbeatEvent::default(), None).unwrap();
    assert_eq!(ours, fixture("heartbeat_event"));
    assert_eq!(ours, [0, 0, 0, 4, 0x08, 51, 0x12, 0]);
}

#[test]
fn requests_encode_exactly_as_the_sdk_does() {
    let auth = ProtoOAAccountAuthReq { payload_type: None, ctid_trader_account_id: 1001, access_token: "token".into() };
    assert_eq!(encode_message(&auth, Some("c1".into())).unwrap(), fixture("account_auth_req"));

    let market = ProtoOANewOrderReq {
        ctid_trader_account_id: 1001,
        symbol_id: 1,
        order_type: ProtoOAOrderType::Market as i32,
        trade_side: ProtoOATradeSide::Buy as i32,
        volume: 100_000,
        label: Some("m1f.3e9.0".into()),
        client_order_id: Some("m1f.3e9.0".into()),
        ..ProtoOANewOrderReq::default()
    };
    assert_eq!(encode_message(&market, Some("c2".into())).unwrap(), fixture("new_order_market"));

    let limit = ProtoOANewOrderReq {
        ctid_trader_account_id: 1001,
        symbol_id: 1,
        order_type: ProtoOAOrderType::Limit as i32,
        trade_side: ProtoOATradeSide::Sell as i32,
        volume: 250_000,
        limit_price: Some(1.0951),
        time_in_force: Some(ProtoOATimeInForce::GoodTillDate as i32),
        expiration_timestamp: Some(1_700_000_600_000),
        stop_loss: Some(1.1),
        take_profit: Some(1.09),
        label: Some("m20.3e9.1".into()),
        position_id: Some(77),
        client_order_id: Some("m20.3e9.1".into()),
        ..ProtoOANewOrderReq::default()
    };
    assert_eq!(encode_message(&limit, Some("c3".into())).unwrap(), fixture("new_order_limit"));
    let (back, _) = decoded::<ProtoOANewOrderReq>("new_order_limit");
    assert_eq!(back, limit);
    // proto2 defaults come through the generated getters.
    assert_eq!(back.stop_trigger_method(), mirror_connector_ctrader::proto::ProtoOAOrderTriggerMethod::Trade);
}

#[test]
fn an_execution_event_decodes_field_for_field() {
    let (event, wrapper) = decoded::<ProtoOAExecutionEvent>("execution_filled");
    assert_eq!(wrapper.client_msg_id.as_deref(), Some("c2"));
    assert_eq!(event.execution_type, ProtoOAExecutionType::OrderFilled as i32);
    assert_eq!(event.is_server_event, Some(false));
    let position = event.position.unwrap();
    assert_eq!(position.position_id, 5);
    assert_eq!(position.position_status, ProtoOAPositionStatus::PositionStatusOpen as i32);
    assert_eq!(position.price, Some(1.08508));
    assert_eq!(position.stop_loss, Some(1.08));
    assert_eq!(position.trade_data.as_ref().unwrap().label.as_deref(), Some("m1f.3e9.0"));
    let order = event.order.unwrap();
    assert_eq!(order.order_status, ProtoOAOrderStatus::OrderStatusFilled as i32);
    assert_eq!(order.client_order_id.as_deref(), Some("m1f.3e9.0"));
    assert_eq!(order.executed_volume, Some(100_000));
    // Unset proto2 enum with a default: IMMEDIATE_OR_CANCEL.
    assert_eq!(order.time_in_force(), ProtoOATimeInForce::ImmediateOrCancel);
    let deal = event.deal.unwrap();
    assert_eq!((deal.deal_id, deal.filled_volume, deal.execution_price), (9, 100_000, Some(1.08508)));
    let detail = deal.close_position_detail.unwrap();
    assert_eq!((detail.gross_profit, detail.commission, detail.balance), (-1234, -50, 9_998_716));
    assert_eq!(detail.closed_volume, Some(50_000));
}

#[test]
fn server_messages_decode() {
    let (spot, _) = decoded::<ProtoOASpotEvent>("spot_event");
    assert_eq!(
        (spot.symbol_id, spot.bid, spot.ask, spot.timestamp),
        (1, Some(108_500), Some(108_508), Some(1_700_000_000_123))
    );

    let (error, wrapper) = decoded::<ProtoOAErrorRes>("error_res");
    assert_eq!(error.error_code, "REQUEST_FREQUENCY_EXCEEDED");
    assert_eq!(wrapper.client_msg_id.as_deref(), Some("c9"));

    let (order_error, _) = decoded::<ProtoOAOrderErrorEvent>("order_error_event");
    assert_eq!((order_error.ctid_trader_account_id, order_error.error_code.as_str()), (1001, "TRADING_BAD_VOLUME"));

    let (snapshot, _) = decoded::<ProtoOAReconcileRes>("reconcile_res");
    assert_eq!(snapshot.position.len(), 1);
    assert_eq!(snapshot.position[0].swap, -12);
    assert_eq!(snapshot.order[0].limit_price, Some(1.08));
    assert_eq!(snapshot.order[0].client_order_id.as_deref(), Some("m21.3e9.0"));

    let (symbols, _) = decoded::<ProtoOASymbolByIdRes>("symbol_by_id_res");
    let symbol = &symbols.symbol[0];
    assert_eq!(
        (symbol.lot_size, symbol.step_volume, symbol.min_volume),
        (Some(10_000_000), Some(100_000), Some(100_000))
    );
    assert_eq!(symbol.schedule[0].end_second, 604_800);
    assert_eq!(symbol.swap_long, Some(-0.5));

    let (accounts, _) = decoded::<ProtoOAGetAccountListByAccessTokenRes>("account_list_res");
    // `ctidTraderAccountId` is uint64 in this one message (int64 everywhere else).
    assert_eq!(accounts.ctid_trader_account[1].ctid_trader_account_id, 1 << 40);
    assert_eq!(accounts.ctid_trader_account[0].trader_login, Some(5_001_001));
}

#[test]
fn a_stream_of_fixtures_cut_anywhere_decodes_in_order() {
    let names = ["spot_event", "execution_filled", "heartbeat_event", "error_res"];
    let stream: Vec<u8> = names.iter().flat_map(|n| fixture(n)).collect();
    for cut in [1, 3, 4, 5, 17, stream.len() / 2, stream.len() - 1] {
        let mut decoder = FrameDecoder::new();
        let mut types = Vec::new();
        for part in [&stream[..cut], &stream[cut..]] {
            decoder.extend(part);
            while let Some(message) = decoder.next_message().unwrap() {
                types.push(message.payload_type);
            }
        }
        assert_eq!(types, vec![2131, 2126, 51, 2142], "cut at {cut}");
    }
}
